"""Copy an embedded collection into a Milvus collection: how a deployment moves to Milvus.

    python -m training.to_milvus --index scifact [--uri http://milvus:19530] [--index-type IVF_FLAT]

Copies what the service would serve now: the published build's surviving documents and the uncompacted
writes in its log, with their stored vectors (nothing is encoded again), metadata, text (Milvus computes
BM25 from it), each document's column of E and the CUR anchors, U, anchor texts and queries, the measured
fusion, and the model's hash and dimension. Documents written since CUR was fitted copy without a column,
as in the embedded collection. An IVF_FLAT index gets ``nprobe`` tuned to ``--target-recall`` against exact
search, measured as the embedded build measures it. The target is the setting's ``SIMSEARCH_MILVUS_URI``
(a milvus-lite file, or a server) and ``SIMSEARCH_MILVUS_COLLECTION`` (default: the index name); an
existing collection is replaced only with ``--replace``. Copy, check, then point the service at it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from simsearch.ann.tuning import IVF_NPROBE, exact_neighbours, exact_top
from simsearch.cli import fail, settings_with
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.collection.milvus import (
    CurData,
    IndexType,
    MilvusCollection,
    MilvusCollectionError,
    MilvusIndexInfo,
    MilvusInfo,
    create_collection,
    pk,
)
from simsearch.collection.open import CollectionOpenError, connect, milvus_collection_name, milvus_token, public_uri
from simsearch.data.corpus import Document
from simsearch.index import IndexLoadError
from simsearch.index.layout import TUNING_QUERIES_FILE

Spans = list[list[tuple[int, int]]]
# documents, vectors (one per passage, in document order), their columns of E, each document's passage spans
Batch = tuple[list[Document], np.ndarray, np.ndarray | None, Spans | None]


def default_nlist(n: int) -> int:
    """4 √n lists, a power of two, as FAISS's IVF advice (and bench/index_types.py) has it."""
    return max(1, 1 << round(math.log2(max(1.0, 4 * math.sqrt(n)))))


def live_batches(source: EmbeddedCollection, batch_size: int) -> tuple[int, Iterator[Batch]]:
    """How many documents the collection holds now, and they in batches: the build's survivors in position
    order (with E's columns, when fitted), then the live writes in write order (without). A collection of
    passages gives each document's passage vectors and spans (``None`` for one vector per document)."""
    view = source.view()
    state, base = view.state, view.base
    survivors = np.setdiff1d(np.arange(base.count), state.dead_base)
    live = state.live_delta_keys
    cur = base.index.cur
    passages = view.has_passages
    # E's columns exactly as the build searches them (a flat FAISS index over E's columns)
    columns = cur.ann.index.reconstruct_n(0, base.count) if cur is not None else None  # type: ignore[attr-defined]

    def base_batch(part: np.ndarray) -> Batch:
        docs = base.index.store.get(part.tolist())
        cols = np.asarray(columns[part], np.float32) if columns is not None else None
        stored = base.embeddings()
        if not passages:
            return docs, np.asarray(stored[part], np.float32), cols, None
        runs = [base.rows_of(int(k)) for k in part]
        vectors = np.concatenate([np.asarray(stored[a:b], np.float32) for a, b in runs])
        spans = [[base.span(r, d.text) for r in range(a, b)] for (a, b), d in zip(runs, docs, strict=True)]
        return docs, vectors, cols, spans

    def live_batch(keys: np.ndarray) -> Batch:
        docs = [state.doc(int(k)) for k in keys]
        rows = [state.rows_of(int(k)) for k in keys]
        vectors = np.concatenate([state.buffer[r] for r in rows]).astype(np.float32)
        spans = [[(int(a), int(b)) for a, b in state.row_span[r]] for r in rows] if passages else None
        return docs, vectors, None, spans

    def batches() -> Iterator[Batch]:
        for start in range(0, len(survivors), batch_size):
            yield base_batch(survivors[start : start + batch_size])
        for start in range(0, len(live), batch_size):
            yield live_batch(live[start : start + batch_size])

    return len(survivors) + len(live), batches()


def cur_data(source: EmbeddedCollection) -> CurData | None:
    """The anchors (an anchor replaced or deleted since the fit copies as absent), U, texts and queries."""
    view = source.view()
    cur = view.base.index.cur
    if cur is None:
        return None
    positions = [int(a) for a in cur.anchors]
    live = [p for p in positions if p >= 0 and p not in view.state.dead]
    ids = dict(zip(live, (d.id for d in view.base.index.store.get(live)), strict=True))
    return CurData(
        anchor_ids=[ids.get(p) for p in positions],
        anchor_texts=list(cur.anchor_texts),
        anchor_queries=list(cur.anchor_queries),
        U=np.asarray(cur.U, np.float32),
    )


def tune_nprobe(
    collection: MilvusCollection,
    vectors: np.ndarray,
    ids: list[str],
    *,
    target_recall: float = 0.95,
    queries: int = 200,
    seed: int = 0,
    query_vectors: np.ndarray | None = None,
    primary_keys: list[str] | None = None,
) -> MilvusIndexInfo:
    """Raise IVF_FLAT's ``nprobe`` until recall@10 against exact search reaches the target, on held-apart
    vectors (a seeded sample as queries, each one's own vector left out), as simsearch.ann.tuning does, or
    on ``query_vectors`` (queries like the served ones) when given. ``vectors`` are every document's, in
    the order of ``ids``; or every row's (a collection of passages), with their Milvus ``primary_keys``."""
    index = collection.info.index
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    given = query_vectors is not None and len(query_vectors) > 0
    if given:
        probes = np.ascontiguousarray(query_vectors, dtype=np.float32)[:queries]
        truth = exact_top(vectors, probes)
        sample = np.full(len(probes), -1)  # no query is a document: nothing to leave out
    else:
        sample = np.random.default_rng(seed).choice(len(vectors), size=min(queries, len(vectors)), replace=False)
        probes = vectors[sample]
        truth = exact_neighbours(vectors, sample)
    position = {key: p for p, key in enumerate(primary_keys if primary_keys is not None else [pk(i) for i in ids])}
    ladder: list[int | None] = [None]
    if index.nlist:
        ladder = [*(p for p in IVF_NPROBE if p < index.nlist), index.nlist]
    recall, nprobe = 0.0, None
    for nprobe in ladder:  # without lists (AUTOINDEX): measured once, as Milvus chose
        found = collection.client.search(
            collection.name,
            data=probes.tolist(),
            anns_field="vector",
            limit=11,
            search_params={"metric_type": "IP", **({"params": {"nprobe": nprobe}} if nprobe else {})},
            consistency_level="Strong",
        )
        hits = 0
        for q, row, right in zip(sample, found, truth, strict=True):
            got = [position[h["id"]] for h in row if position[h["id"]] != q][:10]
            hits += len(set(got).intersection(right.tolist()))
        recall = hits / (10 * len(sample))
        if recall >= target_recall:
            break
    return index.model_copy(
        update={
            "nprobe": nprobe,
            "recall_at_10": round(recall, 4),
            "target_recall": target_recall,
            "recall_queries": len(sample),
            "recall_measured_on": "given queries" if given else "held-apart corpus vectors",
        }
    )


def copy_to_milvus(
    source: EmbeddedCollection,
    client: Any,
    name: str,
    *,
    uri: str = "",
    index_type: IndexType = "FLAT",
    nlist: int | None = None,
    target_recall: float = 0.95,
    batch_size: int = 1000,
    replace: bool = False,
    progress: bool = True,
) -> MilvusCollection:
    """Copy ``source`` as it is now into the Milvus collection ``name`` (see the module docstring)."""
    m = source.index.manifest
    passages = source.view().has_passages
    if passages and source.index.cur is not None:
        raise MilvusCollectionError(
            f"index {m.name!r} has CUR columns and passages; Milvus keeps CUR columns for a row per document only: "
            "copy a build without CUR (training.build_index without training.fit_cur)"
        )
    count, batches = live_batches(source, batch_size)
    # 1. an empty collection for this model, index type and CUR arrays
    index = MilvusIndexInfo(
        type=index_type, nlist=(nlist or default_nlist(count)) if index_type == "IVF_FLAT" else None
    )
    info = MilvusInfo(
        name=name,
        model=m.model,
        index=index,
        fusion=m.fusion,
        rerank=m.rerank,
        cur=m.cur,
        spec=m.spec,
        source={"from": "embedded", "index": m.name, "build_id": m.build_id, "sequence": source.sequence},
    )
    target = create_collection(client, info, cur_data(source), uri=uri, replace=replace, sequence=source.sequence)
    # 2. the documents, in batches (each an upsert: a copy run again writes each document once)
    measure = index_type != "FLAT"  # exact search needs no measuring; the others are measured against it
    parts: list[np.ndarray] = []
    ids: list[str] = []
    keys: list[str] = []  # the Milvus row keys, in the order of the vectors kept for tuning
    with tqdm(total=count, unit="doc", desc=f"copying {m.name} to Milvus {name}", disable=not progress) as bar:
        for docs, vecs, cols, spans in batches:
            target.load(docs, vecs, cols, spans=spans)
            if measure:
                parts.append(vecs)
                if spans is not None:
                    keys += [f"{pk(d.id)}:{o}" for d, s in zip(docs, spans, strict=True) for o in range(len(s))]
            ids += [d.id for d in docs]
            bar.update(len(docs))
    vectors = np.concatenate(parts) if parts else None
    # 3. seal the segments and wait for the index, then tune the search to the target recall on it
    indexed = target.flush()
    if vectors is not None:
        kept = source.index.path / TUNING_QUERIES_FILE  # the build's own tuning queries, when it has them
        tuned = tune_nprobe(
            target,
            vectors,
            ids,
            target_recall=target_recall,
            query_vectors=np.load(kept, allow_pickle=False) if kept.is_file() else None,
            primary_keys=keys if passages else None,
        )
        target.set_index_info(tuned.model_copy(update={"indexed_rows": indexed}))
    else:
        target.set_index_info(index.model_copy(update={"recall_at_10": 1.0, "indexed_rows": indexed}))
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-to-milvus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--index", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path, help="default: SIMSEARCH_INDEX_DIR")
    p.add_argument("--uri", help="milvus-lite file or server address (default: SIMSEARCH_MILVUS_URI)")
    p.add_argument("--collection", help="Milvus collection (default: SIMSEARCH_MILVUS_COLLECTION, or the index name)")
    p.add_argument("--index-type", choices=["FLAT", "IVF_FLAT", "AUTOINDEX"], default="FLAT")
    p.add_argument("--nlist", type=int, help="IVF_FLAT lists (default: 4 sqrt(n), a power of two)")
    p.add_argument("--target-recall", type=float, default=0.95, help="IVF_FLAT: recall@10 nprobe is tuned to")
    p.add_argument("--batch-size", type=int, default=1000, help="documents per insert (default: %(default)s)")
    p.add_argument("--replace", action="store_true", help="drop an existing collection of that name first")
    p.add_argument("--if-missing", action="store_true", help="do nothing when the collection exists (compose)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.index, index_dir=args.index_dir)
    uri = args.uri or str(getattr(settings, "milvus_uri", "indexes/milvus.db"))
    name = args.collection or milvus_collection_name(settings)
    started = time.perf_counter()
    try:
        client = connect(uri, milvus_token(settings))
    except CollectionOpenError as exc:
        fail(str(exc))
    if args.if_missing and client.has_collection(name):
        print(f"Milvus collection {name} exists at {public_uri(uri)}; nothing to do (--if-missing)")
        client.close()
        return 0
    try:
        # 1. the source, read-only: the copy never writes to the embedded collection or its log
        source = EmbeddedCollection.open(settings.index_path, verify=settings.verify_checksums, writable=False)
    except IndexLoadError as exc:
        client.close()
        fail(str(exc))
    try:
        # 2. copy, flush, tune
        target = copy_to_milvus(
            source,
            client,
            name,
            uri=public_uri(uri),
            index_type=args.index_type,
            nlist=args.nlist,
            target_recall=args.target_recall,
            batch_size=args.batch_size,
            replace=args.replace,
            progress=not args.no_progress,
        )
        # 3. report
        index = target.info.index
        print(
            f"copied {source.name} (build {source.index.manifest.build_id}, sequence {source.sequence}) to Milvus "
            f"collection {name} at {public_uri(uri)}: {target.count()} documents, {index.type}"
            + (f" nlist={index.nlist} nprobe={index.nprobe} recall@10={index.recall_at_10}" if index.nlist else "")
            + f" ({index.indexed_rows} rows indexed, the rest searched exactly)"
            + (", with CUR columns" if target.has_cur else "")
            + f", {time.perf_counter() - started:.1f} s"
        )
    except (MilvusCollectionError, ValueError) as exc:
        fail(str(exc))
    finally:
        source.close()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
