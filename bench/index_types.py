"""Index types at 100,000 and 1,000,000 vectors: exact, HNSW and IVF tuned to recall@10 >= 0.95.

    python -m bench.index_types [--sizes 100000 1000000]

Vectors: the real all-MiniLM-L6-v2 embeddings we have (the 5,183 SciFact abstracts from the demo index,
plus STS-B sentences when bench.cur has cached them), padded to size with synthetic ones: a real vector
plus Gaussian noise (sigma 0.05 per dimension, then normalised), so the padding keeps the clustered shape
of real embeddings. Recall is measured on held-apart vectors against exact search (simsearch.ann.tuning);
search time is one query at a time, SciFact test claims as queries. Writes bench/results/index_types.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from bench.common import write_result
from simsearch.ann.tuning import build_tuned
from simsearch.cli import settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.index.layout import EMBEDDINGS_FILE
from simsearch.models.bi_encoder import BiEncoder


def real_vectors(index_dir: Path) -> np.ndarray:
    parts = [np.load(index_dir / "scifact" / EMBEDDINGS_FILE, allow_pickle=False)]
    parts += [np.load(p, allow_pickle=False) for p in sorted(Path("cache/cur/stsb").glob("dense-*.npy"))]
    return np.concatenate(parts).astype(np.float32)


def padded(real: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((size, real.shape[1]), dtype=np.float32)
    n = min(size, len(real))
    out[:n] = real[:n]
    for start in range(n, size, 100_000):
        stop = min(size, start + 100_000)
        base = real[rng.integers(0, len(real), stop - start)]
        noisy = base + rng.normal(0, 0.05, size=base.shape).astype(np.float32)
        out[start:stop] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--target-recall", type=float, default=0.95)
    args = p.parse_args(argv)
    settings = settings_with()
    real = real_vectors(settings.index_dir)
    data = settings.data_dir / "scifact"
    queries = load_queries(data)
    encoder = BiEncoder.load(settings.bi_model)
    q = encoder.encode([queries[i] for i in sorted(load_qrels(data, "test"))][:200])
    rows = []
    for size in args.sizes:
        vectors = padded(real, size)
        lists = 1024 if size <= 200_000 else 4096
        for factory in ("Flat", "HNSW32", f"IVF{lists},Flat", f"IVF{lists},PQ48"):
            t0 = time.perf_counter()
            index, measured = build_tuned(vectors, factory, target_recall=args.target_recall, queries=500)
            build_s = time.perf_counter() - t0
            times = []
            for row in q:
                t = time.perf_counter()
                index.search(row[None, :], 10)
                times.append(time.perf_counter() - t)
            result = {
                "vectors": size,
                "real_vectors": min(size, len(real)),
                "factory": factory,
                "recall_at_10": measured["recall_at_10"],
                "tuned": measured["tuned"],
                "build_s": round(build_s, 1),
                "search_ms_p50": round(1000 * float(np.median(times)), 3),
                "bytes": len(faiss.serialize_index(index.index)),
            }
            rows.append(result)
            print(result)
            del index
    path = write_result(
        "index_types",
        {
            "benchmark": "FAISS index types by size, tuned at build time to a target recall@10 against exact search",
            "target_recall": args.target_recall,
            "vectors": f"{len(real)} real all-MiniLM-L6-v2 embeddings, padded with noisy copies (sigma 0.05)",
            "rows": rows,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
