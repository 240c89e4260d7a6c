"""Milvus beside FAISS, and encoding on Ray: what the distributed path costs and whether it gives the same.

    python -m bench.scale [--parts quality sizes ray] [--sizes 100000 1000000] [--ray-docs 1024]

1. quality: the SciFact index (indexes/scifact) copied into Milvus (FLAT: exact, as the FAISS build is) and
   both searched through the same pipeline: nDCG@10 per mode (dense, lexical, hybrid; rerank and cur with
   ``--cross``) and the time of one search (query vectors computed once, outside the timing).
2. sizes: ingestion and search at each size, milvus-lite (FLAT, then IVF_FLAT with nprobe tuned to recall
   0.95) against FAISS (Flat, IVF,Flat tuned the same way). The vectors are the real all-MiniLM-L6-v2
   SciFact embeddings padded with noisy copies, as bench/index_types.py pads them (so neighbours cluster
   around the 5,183 real ones; IVF's recall is flattered by that, see docs/scale.md). milvus-lite is the
   Milvus engine in one local process on these 2 cores: a file, not a cluster.
3. ray: the single-process encoding against training.encode_ray with 1 actor (2 cores) and 2 actors (1
   core each), on the first ``--ray-docs`` SciFact documents: documents a second, and the largest
   difference from the single-process vectors. No speed-up is expected on 2 cores; the point is that the
   distributed path gives the same vectors.
Writes bench/results/scale.json (each part replaces its own section).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.common import RESULTS, write_result
from bench.index_types import padded, real_vectors
from simsearch.ann.tuning import build_tuned
from simsearch.cli import settings_with
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.collection.milvus import MilvusIndexInfo, MilvusInfo, create_collection
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import Document, iter_documents
from simsearch.evaluation.retrieval import evaluate_beir
from simsearch.index.layout import EMBEDDINGS_FILE
from simsearch.index.manifest import ModelInfo
from simsearch.models.bi_encoder import BiEncoder
from simsearch.search import SearchParams, SearchPipeline
from training.to_milvus import copy_to_milvus, default_nlist, tune_nprobe


class CachedQueries:
    """The pipeline's models with the query vectors computed beforehand, so a timing is the search alone."""

    def __init__(self, vectors: dict[str, np.ndarray], cross: Any = None) -> None:
        self.vectors = vectors
        self.cross = cross

    @property
    def has_cross(self) -> bool:
        return self.cross is not None

    async def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])

    async def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.asarray(self.cross.score(pairs))

    async def blocking(self, fn: Any) -> Any:
        return fn()

    async def encode_then(self, texts: list[str], then: Any) -> Any:
        return then(await self.encode(texts))


def milvus_rss_mb() -> float | None:
    """Resident memory of this process's milvus-lite server (a child process)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split()
            if int(fields[3]) == os.getpid() and b"milvus" in (stat.parent / "cmdline").read_bytes():
                for line in (stat.parent / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        return round(int(line.split()[1]) / 1024, 1)
        except (OSError, ValueError, IndexError):
            continue
    return None


def p50_ms(times: list[float]) -> float:
    return round(1000 * float(np.median(times)), 3)


# ---- 1. SciFact through Milvus and FAISS ------------------------------------------------------------------


def quality(settings: Any, client: Any, encoder: BiEncoder, cross_path: str | None) -> dict[str, Any]:
    data = settings.data_dir / "scifact"
    source = EmbeddedCollection.open(settings.index_dir / "scifact", writable=False)
    t0 = time.perf_counter()
    milvus = copy_to_milvus(source, client, "scifact", index_type="FLAT", replace=True, progress=True)
    copy_s = time.perf_counter() - t0
    queries = load_queries(data)
    judged = sorted(load_qrels(data, "test"))
    from simsearch.serving.runtime import job_entry

    name, registry = job_entry(settings)
    prefix = registry.entries[name].query_prefix  # the pipeline asks for the prefixed texts
    texts = [prefix + queries[q] for q in judged]
    vectors = dict(zip(texts, encoder.encode(texts), strict=True))
    cross = None
    if cross_path:
        from simsearch.models.cross_encoder import CrossScorer

        cross = CrossScorer.load(cross_path)
    models = CachedQueries(vectors, cross)
    pipeline = SearchPipeline(query_prefix=prefix)
    modes = ["dense", "lexical", "hybrid", *(["rerank", "cur"] if cross is not None else [])]
    rows = []
    for mode in modes:
        row: dict[str, Any] = {"mode": mode}
        for backend, view in (("faiss", source.view()), ("milvus", milvus.view())):
            why = pipeline.unavailable(view, models, "cur") if mode == "cur" else None
            if why:
                row[backend] = {"unavailable": why}
                continue
            result = evaluate_beir(pipeline, view, models, data, params=SearchParams(mode=mode), progress=False)  # type: ignore[arg-type]
            row[backend] = {k: result[k] for k in ("ndcg@10", "recall@100", "p50_ms_per_query", "ms_per_query")}
        if "ndcg@10" in row["faiss"] and "ndcg@10" in row["milvus"]:
            row["ndcg_difference"] = round(row["milvus"]["ndcg@10"] - row["faiss"]["ndcg@10"], 3)
        rows.append(row)
        print(row)
    # the retrieval call alone, k = 10: what the backend adds to a search
    retrieval: dict[str, Any] = {}
    for backend, view in (("faiss", source.view()), ("milvus", milvus.view())):
        times = []
        for text in texts:
            started = time.perf_counter()
            ranked = view.dense(vectors[text], 10)
            view.documents([k for k, _ in ranked])
            times.append(time.perf_counter() - started)
        retrieval[backend] = {"dense_k10_with_documents_p50_ms": p50_ms(times)}
    source.close()
    return {
        "documents": milvus.count(),
        "queries": len(judged),
        "copy_seconds": round(copy_s, 1),
        "milvus_index": "FLAT (exact)",
        "faiss_index": "Flat (exact)",
        "modes": rows,
        "retrieval_only": retrieval,
        "cross_encoder": cross_path,
    }


# ---- 2. ingestion and search by size ----------------------------------------------------------------------


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)]))


def sizes(settings: Any, client: Any, encoder: BiEncoder, size_list: list[int], batch: int) -> list[dict[str, Any]]:
    real = real_vectors(settings.index_dir)
    data = settings.data_dir / "scifact"
    queries = load_queries(data)
    q = encoder.encode([queries[i] for i in sorted(load_qrels(data, "test"))][:200])
    # both engines tune on train claims, never on the test claims measured here: claims are unlike
    # abstracts, and tuning on held-apart abstracts overstates recall on them (docs/results/collections.md)
    tuning = encoder.encode([queries[i] for i in sorted(load_qrels(data, "train"))][:500])
    model = ModelInfo(path=encoder.path, sha256=encoder.sha256, dimension=encoder.dim, max_seq_length=256)
    rows = []
    for size in size_list:
        vectors = padded(real, size)
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        truth = flat.search(q, 10)[1]  # the exact top 10 of each query
        del flat
        nlist = default_nlist(size)
        row: dict[str, Any] = {"vectors": size, "real_vectors": min(size, len(real)), "nlist": nlist}
        # FAISS: Flat and IVF,Flat, built and tuned as the embedded build does
        for key, factory in (("faiss_flat", "Flat"), ("faiss_ivf_flat", f"IVF{nlist},Flat")):
            t0 = time.perf_counter()
            index, measured = build_tuned(vectors, factory, target_recall=0.95, queries=500, query_vectors=tuning)
            build_s = time.perf_counter() - t0
            times, found = [], []
            for v in q:
                started = time.perf_counter()
                _, pos = index.search(v[None, :], 10)
                times.append(time.perf_counter() - started)
                found.append(pos[0].tolist())
            row[key] = {
                "factory": factory,
                "build_s": round(build_s, 1),
                "tuned": measured.get("tuned"),
                "search_ms_p50": p50_ms(times),
                "recall_at_10_queries": round(recall(found, truth), 4),
            }
            del index
        # milvus-lite: ingestion in batches, FLAT, then the same data re-indexed as IVF_FLAT
        name = f"scale_{size}"
        info = MilvusInfo(name=name, model=model, index=MilvusIndexInfo(type="FLAT"), source={"from": "bench.scale"})
        c = create_collection(client, info, replace=True)
        ids = [str(i) for i in range(size)]
        t0 = time.perf_counter()
        for start in range(0, size, batch):
            docs = [Document(id=i, text=f"d{i}") for i in ids[start : start + batch]]
            c.load(docs, vectors[start : start + batch])
        insert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        c.flush()
        flush_s = time.perf_counter() - t0
        row["milvus_ingest"] = {"insert_s": round(insert_s, 1), "flush_s": round(flush_s, 1), "batch": batch}
        row["milvus_ingest"]["docs_per_s"] = round(size / (insert_s + flush_s), 1)
        for index_type in ("FLAT", "IVF_FLAT"):
            build_s = 0.0
            if index_type == "IVF_FLAT":
                t0 = time.perf_counter()
                client.release_collection(name)
                client.drop_index(name, "vector")
                params = client.prepare_index_params()
                params.add_index("vector", index_type="IVF_FLAT", metric_type="IP", params={"nlist": nlist})
                client.create_index(name, params)
                client.load_collection(name)
                c.flush()  # waits while the index is built
                build_s = time.perf_counter() - t0
                c.set_index_info(MilvusIndexInfo(type="IVF_FLAT", nlist=nlist))
                t0 = time.perf_counter()
                c.set_index_info(tune_nprobe(c, vectors, ids, target_recall=0.95, queries=200, query_vectors=tuning))
                row.setdefault("milvus_IVF_FLAT", {})["tune_s"] = round(time.perf_counter() - t0, 1)
            view = c.view()
            times, found = [], []
            for v in q:
                started = time.perf_counter()
                ranked = view.dense(v, 10)
                times.append(time.perf_counter() - started)
                found.append([int(d.id) for d in view.documents([k for k, _ in ranked]) if d is not None])
            state = client.describe_index(name, "vector")
            row.setdefault(f"milvus_{index_type}", {}).update(
                {
                    "index_build_s": round(build_s, 1),
                    "indexed_rows": int(state.get("indexed_rows") or 0),
                    "nprobe": c.info.index.nprobe,
                    "recall_at_10_tuning": c.info.index.recall_at_10,
                    "search_ms_p50": p50_ms(times),
                    "recall_at_10_queries": round(recall(found, truth), 4),
                }
            )
        row["milvus_rss_mb"] = milvus_rss_mb()
        row["load_average_1m"] = round(os.getloadavg()[0], 2)  # the 2 cores are shared with training jobs
        client.drop_collection(name)
        client.drop_collection(name + "__simsearch")
        rows.append(row)
        print(row)
        del vectors
    return rows


# ---- 3. Ray encoding ----------------------------------------------------------------------------------


def ray_encoding(settings: Any, encoder: BiEncoder, docs: int, work: Path) -> dict[str, Any]:
    import ray

    from training.encode_ray import EncodeConfig, run

    corpus = work / "ray-corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for i, d in enumerate(iter_documents(settings.data_dir / "scifact")):
            if i == docs:
                break
            f.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    texts = [d.content() for d in iter_documents(corpus)]
    # the single-process job's encoding: batches of 256 (the build's chunk), all cores
    t0 = time.perf_counter()
    reference = np.concatenate([encoder.encode(texts[i : i + 256]) for i in range(0, len(texts), 256)])
    single_s = time.perf_counter() - t0
    rows: list[dict[str, Any]] = [
        {"runner": "single process", "cores": os.cpu_count(), "seconds": round(single_s, 2)},
    ]
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0
    try:
        for actors, cpus in ((1, 2), (2, 1)):
            out = work / f"ray-{actors}"
            cfg = EncodeConfig(
                corpus=corpus,
                name="ray",
                model=settings.bi_model,
                actors=actors,
                cpus_per_actor=cpus,
                work_dir=work / "progress",
                progress=False,
            )
            report = run(cfg, (out, {}))
            got = np.load(Path(report["path"]) / EMBEDDINGS_FILE)
            rows.append(
                {
                    "runner": f"ray, {actors} actor(s) x {cpus} core(s)",
                    "seconds": report["seconds"],
                    "max_abs_difference": float(np.abs(got - reference).max()),
                }
            )
            shutil.rmtree(out)
    finally:
        ray.shutdown()
    for row in rows:
        row["docs_per_s"] = round(len(texts) / row["seconds"], 2)
        row["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(rows)
    return {
        "documents": len(texts),
        "ray_init_s": round(init_s, 1),
        "runs": rows,
        "note": "Ray seconds include starting the actor pool (each actor loads the model); one window",
        "per_core_docs_per_s": round(len(texts) / single_s / (os.cpu_count() or 1), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", choices=["quality", "sizes", "ray"], default=["quality", "sizes", "ray"])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    # milvus-lite slows down twentyfold on requests of 5,000 rows of 384-d vectors (measured): 1,000 a request
    p.add_argument("--batch", type=int, default=1000, help="rows per Milvus insert (default: %(default)s)")
    p.add_argument("--ray-docs", type=int, default=1024)
    p.add_argument("--cross", help="a cross-encoder, to measure rerank and cur too")
    p.add_argument("--work", type=Path, default=Path("cache/bench-scale"))
    args = p.parse_args(argv)
    settings = settings_with()
    args.work.mkdir(parents=True, exist_ok=True)
    encoder = BiEncoder.load(settings.bi_model)
    path = RESULTS / "scale.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    result = {k: v for k, v in previous.items() if k not in ("environment",)}
    result["benchmark"] = "Milvus (milvus-lite 2.5.1, in-process) beside FAISS; corpus encoding on Ray Data"
    client = None
    if "quality" in args.parts or "sizes" in args.parts:
        from pymilvus import MilvusClient

        client = MilvusClient(str(args.work / "milvus.db"))
    try:
        if "quality" in args.parts:
            result["quality"] = quality(settings, client, encoder, args.cross)
        if "sizes" in args.parts:
            result["sizes"] = {
                "vectors": "real SciFact all-MiniLM-L6-v2 embeddings padded with noisy copies (bench/index_types.py)",
                "note": "milvus-lite: the Milvus engine in one local process on 2 cores; a file, not a cluster",
                "rows": sizes(settings, client, encoder, args.sizes, args.batch),
            }
        if "ray" in args.parts:
            result["ray"] = ray_encoding(settings, encoder, args.ray_docs, args.work)
    finally:
        if client is not None:
            client.close()
    print(f"wrote {write_result('scale', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
