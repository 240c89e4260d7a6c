"""Hub items: does a scorer rank a few documents high against queries they have nothing to do with?

    python -m bench.hubs [--cross models/bench/scifact/reranker-t0-L128-cosent-teacher] [--queries 50] [--items 600]

The CUR benchmark found that the STS-B cross-encoder scores three long off-topic sentences high against
unrelated queries ("hubs"; docs/results/cur.md). This measures the same thing for any cross-encoder on
SciFact, beside the bi-encoder on the same pairs: ``--queries`` test claims against ``--items`` random
abstracts that none of them is judged relevant to, every pair scored. For each scorer, the k-occurrence
``N_k(d)`` (how many queries have document d in their top k) gives the standard hubness figures: its
skewness (0 without hubs; Radovanović et al., 2010), the largest ``N_k``, and the share of all top-k slots
the 5 most frequent documents take (5/items by chance). Writes bench/results/hubs.json and hubs.png
(the N_k distributions); `--result NAME` names them.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, write_result
from simsearch.cli import settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.index import layout
from simsearch.serving.runtime import load_runtime

DEFAULT_CROSS = "models/bench/scifact/reranker-t0-L128-cosent-teacher"  # what bench.reranker trains


def hubness(scores: np.ndarray, k: int, top: int = 5) -> dict[str, Any]:
    """Hubness of a ``queries × items`` score matrix: the k-occurrence of every item (in how many
    queries' top ``k`` it is), its skewness, its maximum, and the share of the top-k slots that the
    ``top`` most frequent items take."""
    from scipy.stats import skew

    n_queries, n_items = scores.shape
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    occurrence = np.bincount(best.ravel(), minlength=n_items)
    return {
        "k_occurrence_skewness": round(float(skew(occurrence)), 3),
        "max_k_occurrence": int(occurrence.max()),
        f"top{top}_share_of_slots": round(float(np.sort(occurrence)[::-1][:top].sum() / (n_queries * k)), 3),
        "share_by_chance": round(top / n_items, 3),
        "k_occurrence": occurrence.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cross", default=DEFAULT_CROSS)
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--items", type=int, default=600)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--result", default="hubs", help="name of the result files (bench/results/NAME.json, NAME.png)")
    args = p.parse_args(argv)
    if not Path(args.cross).is_dir():
        sys.exit(f"no cross-encoder at {args.cross}: train one first (python -m bench.reranker)")
    settings = settings_with(index_name="scifact", cross_model=args.cross)
    data = settings.data_dir / "scifact"
    rt = load_runtime(settings, writable=False)
    rng = random.Random(args.seed)
    queries, qrels = load_queries(data), load_qrels(data, "test")
    chosen = rng.sample(sorted(q for q in qrels if q in queries), args.queries)
    judged = {d for q in chosen for d in qrels[q]}
    store = rt.index.store
    ids = store.ids()
    unrelated = [p for p in range(len(ids)) if ids[p] not in judged]
    items = sorted(rng.sample(unrelated, args.items))
    texts = [d.content() for d in store.get(items)]
    query_texts = [queries[q] for q in chosen]
    # the bi-encoder: the build's own vectors (embeddings.npy), the query encoded as the service does
    stored = np.load(rt.index.path / layout.EMBEDDINGS_FILE, mmap_mode="r", allow_pickle=False)
    docs = np.asarray(stored[np.asarray(items)])
    vectors = rt.encoder.encode(query_texts, prefix=rt.bi.entry.query_prefix)
    bi = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ (
        docs / np.linalg.norm(docs, axis=1, keepdims=True)
    ).T
    started = time.perf_counter()
    cross = np.zeros((len(chosen), len(items)), dtype=np.float32)
    assert rt.cross is not None
    for i, q in enumerate(query_texts):  # one query's row at a time: progress, and batches of similar pairs
        cross[i] = rt.cross.score([(q, t) for t in texts])
        print(f"scored query {i + 1}/{len(chosen)} ({time.perf_counter() - started:.0f} s)", flush=True)
    scored_seconds = time.perf_counter() - started
    rt.close()
    results = {"bi-encoder": hubness(bi, args.k), "cross-encoder": hubness(cross, args.k)}
    for name, r in results.items():
        print(name, {k: v for k, v in r.items() if k != "k_occurrence"})
        hub = int(np.argmax(r["k_occurrence"]))
        r["most_frequent"] = {"id": ids[items[hub]], "text": texts[hub][:200]}
    plot(results, args.k, RESULTS / f"{args.result}.png")
    path = write_result(
        args.result,
        {
            "benchmark": f"SciFact: {args.queries} test claims against {args.items} random abstracts "
            "none of them is judged relevant to",
            "parameters": vars(args),
            "pairs_scored": len(chosen) * len(items),
            "cross_encoder_seconds": round(scored_seconds, 1),
            "scorers": results,
        },
    )
    print(f"wrote {path}")
    return 0


def plot(results: dict[str, dict[str, Any]], k: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, r in results.items():
        counts = Counter(r["k_occurrence"])
        xs = sorted(counts)
        ax.plot(xs, [counts[x] for x in xs], marker="o", label=f"{name} (skewness {r['k_occurrence_skewness']})")
    ax.set_yscale("log")
    ax.set_xlabel(f"N_{k}: queries whose top {k} holds the document")
    ax.set_ylabel("documents")
    ax.set_title("Hub documents: a long right tail")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
