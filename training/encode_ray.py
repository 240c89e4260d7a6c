"""Encode a corpus on Ray Data and write it into a collection: an embedded build, or a Milvus collection.

    python -m training.encode_ray --corpus ../shared/data/scifact --name scifact [--actors 2] [--batch-size 256]
    python -m training.encode_ray --corpus corpus.jsonl --name big --target milvus --address <head>:6379

The single-process build's encoding (the same BiEncoder, model and document prefix, the same batches of
the corpus in order) run as ``Dataset.map_batches`` with a callable class on an actor pool: one model copy
per actor, ``--actors`` of them, ``--cpus-per-actor`` cores each. The driver reads and checks the corpus
(every line, before anything is encoded), feeds Ray ``--window`` batches at a time (its memory stays
bounded), and writes each encoded batch: rows of a vector file for the embedded target, then a build
published like any other (simsearch.index.from_vectors); an upsert of the batch for Milvus.

Resumable by batch: a batch counts as done once it is written and flushed, recorded in ``done.log`` in a
work folder named for the corpus, the model and the options; an interrupted run (Ctrl-C, kill -9, a lost
node) started again with the same options encodes only the batches not recorded, and gives the same
result (a batch written twice is written the same: rows at fixed positions, upserts by id). ``--address``
runs on an existing Ray cluster (the workers must import simsearch, as the driver does); without it, a
local one with ``--actors`` x ``--cpus-per-actor`` CPUs. A progress bar counts documents.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from simsearch.atomic import atomic_write_json, fsync_dir
from simsearch.cli import fail, settings_with
from simsearch.data.corpus import CorpusError, Document, iter_documents, resolve_corpus, scan_corpus
from simsearch.index.layout import MANIFEST_FILE
from simsearch.index.manifest import ModelInfo
from simsearch.models.files import file_sha256
from simsearch.serving.runtime import StartupError, job_entry

log = logging.getLogger(__name__)


class EncodeConfig(BaseModel):
    """Everything the result depends on (the work folder is named for it) and how the run is spread."""

    model_config = ConfigDict(extra="forbid")
    corpus: Path
    name: str
    model: str
    document_prefix: str = ""
    target: Literal["embedded", "milvus"] = "embedded"
    batch_size: int = Field(256, ge=1, description="Documents per batch: the unit of work, writing and resuming.")
    encode_batch_size: int = Field(32, ge=1, description="The encoder's own batch (as SIMSEARCH_ENCODE_BATCH_SIZE).")
    actors: int = Field(2, ge=1, description="Ray actors, one model copy each.")
    cpus_per_actor: int = Field(1, ge=1)
    window: int = Field(1024, ge=1, description="Batches handed to Ray at a time (each window starts the actor pool).")
    address: str | None = Field(None, description="A Ray cluster to run on; None: a local one.")
    work_dir: Path = Path("cache/encode")
    progress: bool = True

    def identity(self, corpus_sha256: str, model_sha256: str, target: str) -> dict[str, Any]:
        return {
            "corpus_sha256": corpus_sha256,
            "model_sha256": model_sha256,
            "document_prefix": self.document_prefix,
            "batch_size": self.batch_size,
            "target": target,
        }


class EncodeBatch:
    """The Ray actor's callable: loads the model once, then encodes one batch per call."""

    def __init__(self, model: str, prefix: str, batch_size: int, threads: int) -> None:
        import torch

        from simsearch.models.bi_encoder import BiEncoder

        torch.set_num_threads(threads)
        self.encoder = BiEncoder.load(model, batch_size=batch_size)
        self.prefix = prefix

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.encoder.encode([str(t) for t in batch["text"]], prefix=self.prefix)
        return {"pos": np.asarray(batch["pos"], dtype=np.int64), "vector": vectors}


class Progress:
    """The batches written so far: ``done.log``, one number a line, appended and fsynced per batch (a torn
    last line from a kill is ignored: that batch is done again)."""

    def __init__(self, folder: Path, identity: dict[str, Any]) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        job = folder / "job.json"
        if job.exists() and json.loads(job.read_text(encoding="utf-8")) != identity:
            raise ValueError(f"{folder} holds another job's progress: remove it or choose another --work-dir")
        atomic_write_json(job, identity)
        self.path = folder / "done.log"
        self.done: set[int] = set()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip().isdigit():
                    self.done.add(int(line))
        self._file = self.path.open("a", encoding="utf-8")
        fsync_dir(folder)

    def mark(self, batch: int) -> None:
        self._file.write(f"{batch}\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.add(batch)

    def close(self) -> None:
        self._file.close()


class Sink(Protocol):
    """Where encoded batches go; ``write`` returns once the batch is durable."""

    def write(self, docs: list[Document], positions: np.ndarray, vectors: np.ndarray) -> None: ...


class VectorFile:
    """Rows of ``vectors.npy`` in the work folder, at the documents' positions (the embedded target)."""

    def __init__(self, folder: Path, count: int, dim: int) -> None:
        path = folder / "encoded.npy"
        if path.exists():
            self.vectors = np.load(path, mmap_mode="r+", allow_pickle=False)
            if self.vectors.shape != (count, dim):
                raise ValueError(f"{path} holds {self.vectors.shape} vectors, not ({count}, {dim})")
        else:
            self.vectors = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, dim))

    def write(self, docs: list[Document], positions: np.ndarray, vectors: np.ndarray) -> None:
        self.vectors[positions] = vectors
        self.vectors.flush()  # msync: on disk before the batch is marked done


class MilvusSink:
    """An upsert of each batch into the Milvus collection (by id: a batch written twice is written once),
    and the vectors in a file too when the index's search parameter is tuned afterwards."""

    def __init__(self, collection: Any, file: VectorFile | None) -> None:
        self.collection = collection
        self.file = file

    def write(self, docs: list[Document], positions: np.ndarray, vectors: np.ndarray) -> None:
        self.collection.load(docs, vectors)
        if self.file is not None:
            self.file.write(docs, positions, vectors)


def batches(corpus: Path, size: int) -> Iterator[tuple[int, list[Document]]]:
    docs = iter_documents(corpus)
    number = 0
    while chunk := list(islice(docs, size)):
        yield number, chunk
        number += 1


def encode(cfg: EncodeConfig, sink: Sink, progress: Progress, count: int) -> dict[str, Any]:
    """Encode every batch not yet done on Ray and write it to ``sink``; return what the run did."""
    import pandas as pd
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the job's own bar counts documents
    ctx.verbose_stats_logs = False
    started, encoded, windows = time.perf_counter(), 0, 0
    done_docs = sum(min(cfg.batch_size, count - b * cfg.batch_size) for b in progress.done)
    with tqdm(total=count, initial=done_docs, unit="doc", desc=f"encoding {cfg.name}", disable=not cfg.progress) as bar:
        pending = ((b, docs) for b, docs in batches(cfg.corpus, cfg.batch_size) if b not in progress.done)
        while window := list(islice(pending, cfg.window)):
            windows += 1
            by_position = {b * cfg.batch_size + i: (b, d) for b, docs in window for i, d in enumerate(docs)}
            # one block per batch, and the whole block as the actor's batch: a call encodes exactly one batch
            # of the single-process build (the same texts together, so the same padding)
            size = cfg.batch_size
            frames = [
                pd.DataFrame({"pos": np.arange(b * size, b * size + len(docs)), "text": [d.content() for d in docs]})
                for b, docs in window
            ]
            dataset = ray.data.from_pandas(frames).map_batches(
                EncodeBatch,
                batch_size=None,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=cfg.actors),
                num_cpus=cfg.cpus_per_actor,
                fn_constructor_kwargs={
                    "model": cfg.model,
                    "prefix": cfg.document_prefix,
                    "batch_size": cfg.encode_batch_size,
                    "threads": cfg.cpus_per_actor,
                },
            )
            waiting: dict[int, list[tuple[int, np.ndarray]]] = {}
            sizes = {b: len(docs) for b, docs in window}
            for out in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for pos, vec in zip(out["pos"].tolist(), out["vector"], strict=True):
                    waiting.setdefault(by_position[pos][0], []).append((pos, vec))
                for b in [b for b, got in waiting.items() if len(got) == sizes[b]]:  # complete batches
                    got = sorted(waiting.pop(b), key=lambda p: p[0])
                    positions = np.array([p for p, _ in got], dtype=np.int64)
                    sink.write([by_position[p][1] for p in positions], positions, np.stack([v for _, v in got]))
                    progress.mark(b)
                    encoded += 1
                    bar.update(len(got))
            if waiting:
                raise RuntimeError(f"Ray returned batches {sorted(waiting)} incomplete")
    seconds = time.perf_counter() - started
    return {"batches_encoded": encoded, "windows": windows, "seconds": round(seconds, 3)}


_MODELS: dict[tuple[str, str], ModelInfo] = {}


def model_info(cfg: EncodeConfig) -> ModelInfo:
    """What the manifest or the Milvus collection records about the model (loaded once in the driver)."""
    from simsearch.models.bi_encoder import BiEncoder

    known = _MODELS.get((cfg.model, cfg.document_prefix))
    if known is not None:
        return known
    encoder = BiEncoder.load(cfg.model)
    info = _MODELS[(cfg.model, cfg.document_prefix)] = ModelInfo(
        path=encoder.path,
        sha256=encoder.sha256,
        dimension=encoder.dim,
        max_seq_length=encoder.max_seq_length,
        document_prefix=cfg.document_prefix,
        whitening=encoder.whitening,
    )
    return info


def start_ray(cfg: EncodeConfig) -> bool:
    """Connect to ``cfg.address`` or start a local Ray; ``False`` when one was already running here."""
    import ray

    if ray.is_initialized():
        return False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if cfg.address:
        ray.init(address=cfg.address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=cfg.actors * cfg.cpus_per_actor, include_dashboard=False, log_to_driver=False)
    return True


def run(cfg: EncodeConfig, target: Any, *, restart: bool = False) -> dict[str, Any]:
    """Encode ``cfg.corpus`` into ``target``: ``(index_dir, build options)`` for the embedded target, or a
    ``MilvusCollection`` (made for this model) for Milvus. ``restart``: forget an earlier run's progress
    (its target was made afresh). Returns the run's report."""
    import ray

    from simsearch.index.from_vectors import build_from_vectors

    # 1. the corpus, checked line by line before anything is encoded
    corpus, _ = resolve_corpus(cfg.corpus)
    count = scan_corpus(corpus)
    cfg = cfg.model_copy(update={"corpus": corpus})
    # 2. the model's identity, and the progress record of this exact job
    model = model_info(cfg)
    where = f"milvus:{target.uri}/{target.name}" if cfg.target == "milvus" else f"embedded:{cfg.name}"
    identity = cfg.identity(file_sha256(corpus), model.sha256, where)
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    folder = cfg.work_dir / f"{cfg.name}-{key}"
    if restart:
        shutil.rmtree(folder, ignore_errors=True)
    progress = Progress(folder, identity)
    try:
        if cfg.target == "milvus":
            target.check_model(model.sha256, model.dimension)
            tuned = target.info.index.type != "FLAT"  # its search is measured afterwards: keep the vectors
            sink: Sink = MilvusSink(target, VectorFile(folder, count, model.dimension) if tuned else None)
        else:
            sink = VectorFile(folder, count, model.dimension)
        resumed = len(progress.done)
        # 3. encode on Ray, batch by batch, each written and recorded before the next is counted done
        started_here = start_ray(cfg)
        try:
            report = encode(cfg, sink, progress, count)
        finally:
            if started_here:
                ray.shutdown()
        report.update({"documents": count, "batches_resumed": resumed, "actors": cfg.actors, "work": str(folder)})
        # 4. the result: a published build, or a sealed and tuned Milvus collection
        if cfg.target == "embedded":
            index_dir, options = target
            assert isinstance(sink, VectorFile)
            report["path"] = str(
                build_from_vectors(
                    corpus,
                    sink.vectors,
                    model,
                    index_dir,
                    cfg.name,
                    encode_seconds=report["seconds"],
                    progress=cfg.progress,
                    **options,
                )
            )
        else:
            from training.to_milvus import tune_nprobe

            indexed = target.flush()
            if isinstance(sink, MilvusSink) and sink.file is not None:
                ids = [d.id for _, docs in batches(corpus, cfg.batch_size) for d in docs]
                tuned = tune_nprobe(target, np.asarray(sink.file.vectors), ids)
                target.set_index_info(tuned.model_copy(update={"indexed_rows": indexed}))
            report["collection"] = target.name
    finally:
        progress.close()
    shutil.rmtree(folder)  # done: a run started again starts afresh
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-encode-ray", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", type=Path, required=True, help="corpus.jsonl, a BEIR folder, or a .txt file")
    p.add_argument("--name", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path, help="default: SIMSEARCH_INDEX_DIR")
    p.add_argument(
        "--model", help="the bi-encoder: a registry name (default: `default`, SIMSEARCH_BI_MODEL) or a folder"
    )
    p.add_argument("--document-prefix", help="with --model a folder: what goes before every document")
    p.add_argument("--target", choices=["embedded", "milvus"], default="embedded")
    p.add_argument("--uri", help="Milvus: milvus-lite file or server (default: SIMSEARCH_MILVUS_URI)")
    p.add_argument("--collection", help="Milvus collection (default: SIMSEARCH_MILVUS_COLLECTION or the name)")
    p.add_argument("--milvus-index", choices=["FLAT", "IVF_FLAT", "AUTOINDEX"], default="FLAT")
    p.add_argument("--nlist", type=int, help="IVF_FLAT lists (default: 4 sqrt(n), a power of two)")
    p.add_argument("--factory", default="auto", help="embedded: FAISS index-factory string (default: auto)")
    p.add_argument("--batch-size", type=int, default=256, help="documents per batch (default: %(default)s)")
    p.add_argument("--actors", type=int, default=2, help="Ray actors, one model copy each (default: %(default)s)")
    p.add_argument("--cpus-per-actor", type=int, default=1)
    p.add_argument(
        "--window",
        type=int,
        default=1024,
        help="batches handed to Ray at a time; each starts the actors (default: %(default)s)",
    )
    p.add_argument("--address", help="a Ray cluster (e.g. <head>:6379); default: a local Ray")
    p.add_argument("--work-dir", type=Path, default=Path("cache/encode"), help="progress records (resumable)")
    p.add_argument("--replace", action="store_true", help="Milvus: drop an existing collection at a fresh start")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.name, index_dir=args.index_dir)
    try:
        model, registry = job_entry(settings, args.model, document_prefix=args.document_prefix)
    except StartupError as exc:
        fail(str(exc))
    entry = registry.entries[model]
    existing = settings.index_path / MANIFEST_FILE
    if existing.is_file():
        from simsearch.index.manifest import Manifest

        spec = Manifest.read(settings.index_path).spec
        if spec is not None and spec.passages != "none":
            fail(
                f"collection {settings.collection!r} splits documents into passages: build it with "
                "`python -m training.build_index` (this job encodes one vector per document)"
            )
    cfg = EncodeConfig(
        corpus=args.corpus,
        name=settings.collection,
        model=entry.path,
        document_prefix=entry.document_prefix,
        target=args.target,
        batch_size=args.batch_size,
        encode_batch_size=settings.encode_batch_size,
        actors=args.actors,
        cpus_per_actor=args.cpus_per_actor,
        window=args.window,
        address=args.address,
        work_dir=args.work_dir,
        progress=not args.no_progress,
    )
    client, fresh = None, False
    try:
        if args.target == "embedded":
            target: Any = (settings.index_dir, {"params": {"factory": args.factory}})
        else:
            target, client, fresh = milvus_target(cfg, settings, args)
        report = run(cfg, target, restart=fresh)
    except (CorpusError, FileNotFoundError, ValueError, RuntimeError) as exc:
        fail(str(exc))
    finally:
        if client is not None:
            client.close()
    print(json.dumps(report))
    return 0


def milvus_target(cfg: EncodeConfig, settings: Any, args: argparse.Namespace) -> tuple[Any, Any, bool]:
    """The Milvus collection to fill, its client, and whether it was made afresh (``--replace``, or new);
    an existing one is reopened to resume into."""
    from simsearch.collection.milvus import MilvusCollection, MilvusIndexInfo, MilvusInfo, create_collection
    from simsearch.collection.open import connect, milvus_collection_name, milvus_token, public_uri
    from training.to_milvus import default_nlist

    uri = args.uri or str(getattr(settings, "milvus_uri", "indexes/milvus.db"))
    name = args.collection or milvus_collection_name(settings)
    client = connect(uri, milvus_token(settings))
    if client.has_collection(name) and not args.replace:
        return MilvusCollection(client, name, uri=public_uri(uri)), client, False  # resuming: the model is checked
    model = model_info(cfg)
    count = scan_corpus(cfg.corpus)
    nlist = (args.nlist or default_nlist(count)) if args.milvus_index == "IVF_FLAT" else None
    info = MilvusInfo(
        name=name,
        model=model,
        index=MilvusIndexInfo(type=args.milvus_index, nlist=nlist),
        source={"from": "corpus", "path": str(cfg.corpus), "encoded_by": "training.encode_ray"},
    )
    return create_collection(client, info, uri=public_uri(uri), replace=args.replace), client, True


if __name__ == "__main__":
    sys.exit(main())
