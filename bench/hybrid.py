"""Hybrid search: BM25 beside the dense index, fused as measured per collection, on SciFact and DL19.

    python -m bench.hybrid [--corpora scifact msmarco-dl19] [--cross models/ce-scifact]

For each corpus (its index is built, with its lexical index, when missing): the fusion is chosen the way
a collection chooses it (training.fit_fusion: every candidate on the train split's judgments; DL19 has
none, so it keeps the stated default), then every mode runs on the test split through the search
pipeline: lexical, dense, RRF (k = 60), the chosen fusion, and, with ``--cross``, hybrid candidates
re-ranked by the cross-encoder. Also the α sweep on test (a diagnostic, never used to choose), the lexical
index's size and build time, and its update cost per document. Writes bench/results/hybrid.json and
hybrid.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, write_result
from simsearch.cli import settings_with
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import Document
from simsearch.evaluation.fusion_fit import candidates, default_fusion_info, fit_fusion, retrieve_lists, score_fusions
from simsearch.evaluation.metrics import evaluate_run
from simsearch.evaluation.retrieval import evaluate_beir
from simsearch.index.build import build_index
from simsearch.search import Fusion, SearchParams
from simsearch.search.pipeline import FUSION_DEPTH
from simsearch.serving.runtime import load_encoder, load_runtime

INDEX_NAMES = {"scifact": "scifact", "msmarco-dl19": "dl19"}
PUBLISHED = {
    "scifact": {"bm25_anserini_flat": 67.89, "rrf_bm25_minilm": 71.43, "convex_tuned_bm25_minilm": 73.38},
    "msmarco-dl19": {"bm25s_lucene_subset": 68.76, "dense_minilm_subset": 79.77, "rrf_subset": 78.17},
}


def ensure_index(corpus: str, data: Path) -> str:
    """The corpus's index with a lexical index (built, or given one, when missing)."""
    name = INDEX_NAMES[corpus]
    settings = settings_with(index_name=name)
    if not settings.index_path.exists():
        build_index(data, load_encoder(settings), settings.index_dir, name)
    from simsearch.index.manifest import Manifest

    if Manifest.read(settings.index_path.resolve()).lexical is None:
        from training.build_lexical import main as build_lexical

        build_lexical(["--index", name])
    return name


def update_cost(index_path: Path, n: int = 200, batch: int = 50) -> dict[str, float]:
    """Milliseconds per document of upserts into a private copy of the collection (vectors given, so the
    encoding is left out): the whole write path and the lexical index's share of it."""
    with tempfile.TemporaryDirectory() as tmp:
        real = index_path.resolve()
        shutil.copytree(real, Path(tmp) / real.name)
        (Path(tmp) / index_path.name).symlink_to(real.name)
        c = EmbeddedCollection.open(Path(tmp) / index_path.name, verify=False)
        rng = np.random.default_rng(0)
        dim = c.index.manifest.model.dimension
        lexical_s = 0.0
        assert c.lexical is not None
        apply = c.lexical.apply

        def timed_apply(*args: Any) -> Any:
            nonlocal lexical_s
            t0 = time.perf_counter()
            out = apply(*args)
            lexical_s += time.perf_counter() - t0
            return out

        c.lexical.apply = timed_apply  # type: ignore[method-assign,assignment]
        started = time.perf_counter()
        for start in range(0, n, batch):
            docs = [
                Document(id=f"new-{i}", text=f"an added document number {i} about cells")
                for i in range(start, start + batch)
            ]
            vectors = rng.normal(size=(len(docs), dim)).astype(np.float32)
            c.upsert(docs, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        total = time.perf_counter() - started
        c.close()
    return {
        "write_ms_per_doc": round(1000 * total / n, 3),
        "lexical_ms_per_doc": round(1000 * lexical_s / n, 3),
        "batch": batch,
    }


def _normalised(ranked: list[tuple[int, float]], how: str, low: float) -> dict[int, float]:
    if not ranked:
        return {}
    scores = np.array([s for _, s in ranked])
    if how == "z-score":
        mu, sd = scores.mean(), scores.std() or 1.0
        return {k: (s - mu) / sd for k, s in ranked}
    lo = scores.min() if how == "min-max" else low
    span = scores.max() - lo
    return {k: (s - lo) / span if span > 0 else 1.0 for k, s in ranked}


def _convex(dense: Any, lexical: Any, alpha: float, how: str) -> list[int]:
    d, lex = _normalised(dense, how, -1.0), _normalised(lexical, how, 0.0)
    floor_d = min(d.values()) if how == "z-score" and d else 0.0  # z-scores: a missing document is the list's worst
    floor_l = min(lex.values()) if how == "z-score" and lex else 0.0
    scores = {k: alpha * d.get(k, floor_d) + (1 - alpha) * lex.get(k, floor_l) for k in set(d) | set(lex)}
    return [k for k, _ in sorted(scores.items(), key=lambda p: (-p[1], p[0]))][:100]


def normalisation_study(view: Any, models: Any, data: Path, prefix: str) -> list[dict[str, Any]]:
    """Why the convex combination normalises by theoretical minima at depth 1,000: each normalisation and
    depth with α chosen on the train split, reported on test."""
    queries = load_queries(data)
    splits = {}
    for split in ("train", "test"):
        qrels = load_qrels(data, split)
        lists = retrieve_lists(view, models, {q: queries[q] for q in sorted(qrels) if q in queries}, prefix)
        keys = sorted({k for d, lex in lists.values() for k, _ in (*d, *lex)})
        ids = dict(zip(keys, (doc.id if doc else "" for doc in view.documents(keys)), strict=True))
        splits[split] = (lists, qrels, ids)
    rows = []
    for how in ("min-max", "z-score", "theoretical min (TM2C2)"):
        for depth in (100, 1000):
            score = {}
            for split, (lists, qrels, ids) in splits.items():
                for alpha in [round(0.1 * i, 1) for i in range(11)]:
                    run = {
                        q: [ids[k] for k in _convex(d[:depth], lex[:depth], alpha, how.split(" ")[0])]
                        for q, (d, lex) in lists.items()
                    }
                    score[(split, alpha)] = 100 * evaluate_run(run, {q: qrels[q] for q in run})["ndcg@10"]
            alpha = max((a for s, a in score if s == "train"), key=lambda a: score[("train", a)])
            rows.append(
                {
                    "normalisation": how,
                    "depth": depth,
                    "alpha_chosen_on_train": alpha,
                    "train_ndcg@10": round(score[("train", alpha)], 2),
                    "test_ndcg@10": round(score[("test", alpha)], 2),
                }
            )
            print(json.dumps(rows[-1]))
    return rows


def run(corpus: str, data: Path, cross: str | None) -> dict[str, Any]:
    name = ensure_index(corpus, data)
    runtime = load_runtime(settings_with(index_name=name, cross_model=cross), writable=False)
    view, models, pipeline = runtime.view, runtime.direct_models(), runtime.pipeline
    has_train = (data / "qrels" / "train.tsv").is_file()
    # 1. the fusion, chosen as a collection chooses it
    t0 = time.perf_counter()
    chosen = (
        fit_fusion(view, models, data, split="train", query_prefix=pipeline.query_prefix)
        if has_train
        else default_fusion_info()
    )
    choose_s = round(time.perf_counter() - t0, 1)
    fusion = Fusion(chosen.method, alpha=chosen.alpha if chosen.alpha is not None else 0.5, rrf_k=chosen.rrf_k)  # type: ignore[arg-type]
    # 2. every mode on test, through the pipeline
    modes: dict[str, SearchParams] = {
        "lexical": SearchParams(mode="lexical"),
        "dense": SearchParams(mode="dense"),
        "hybrid-rrf": SearchParams(mode="hybrid", fusion=Fusion("rrf")),
        "hybrid-chosen": SearchParams(mode="hybrid", fusion=fusion),
    }
    if cross:
        modes["rerank-dense-100"] = SearchParams(mode="rerank", k_r=100, candidates="dense")
        modes["rerank-hybrid-100"] = SearchParams(mode="rerank", k_r=100, candidates="hybrid", fusion=fusion)
    rows = []
    for label, params in modes.items():
        m = evaluate_beir(pipeline, view, models, data, split="test", params=params, progress=False)
        rows.append(
            {
                "corpus": corpus,
                "mode": label,
                "ndcg@10": round(100 * m["ndcg@10"], 2),
                "recall@100": round(100 * m["recall@100"], 2),
                "mrr@10": round(100 * m["mrr@10"], 2),
                "ms_per_query": m["ms_per_query"],
                "p50_ms_per_query": m["p50_ms_per_query"],
                "cross_encoder_calls_per_query": m["cross_encoder_calls_per_query"],
            }
        )
        print(json.dumps(rows[-1]))
    # 3. the α sweep on test: what the choice left on the table (a diagnostic only)
    queries, qrels = load_queries(data), load_qrels(data, "test")
    lists = retrieve_lists(view, models, {q: queries[q] for q in sorted(qrels) if q in queries}, pipeline.query_prefix)
    sweep = {k: v["ndcg@10"] for k, v in score_fusions(view, lists, qrels, candidates()).items()}
    study = normalisation_study(view, models, data, pipeline.query_prefix) if has_train else None
    manifest = runtime.index.manifest
    out = {
        "index": name,
        "documents": manifest.count,
        "fusion_chosen": chosen.model_dump(),
        "fusion_choice_seconds": choose_s,
        "test_sweep_diagnostic": sweep,
        "normalisation_study": study,
        "lexical_index": manifest.lexical.model_dump() if manifest.lexical else None,
        "lexical_update": update_cost(runtime.settings.index_path),
        "published": PUBLISHED.get(corpus, {}),
        "rows": rows,
    }
    runtime.close()
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 3.6), squeeze=False)
    for ax, (corpus, r) in zip(axes[0], results.items(), strict=True):
        labels = [row["mode"] for row in r["rows"]]
        values = [row["ndcg@10"] for row in r["rows"]]
        bars = ax.barh(labels, values, color=["#8aa" if lab == "dense" else "#58c" for lab in labels])
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
        dense = next(row["ndcg@10"] for row in r["rows"] if row["mode"] == "dense")
        ax.axvline(dense, color="k", lw=0.8, ls="--")
        ax.set_xlim(min(values) - 8, max(values) + 4)
        ax.set_title(f"{corpus}: nDCG@10 (test)")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", nargs="+", default=list(INDEX_NAMES), choices=list(INDEX_NAMES))
    p.add_argument("--cross", help="a cross-encoder for the re-ranking rows (trained per corpus; see docs/jobs.md)")
    args = p.parse_args(argv)
    data = settings_with().data_dir
    previous = RESULTS / "hybrid.json"
    results = json.loads(previous.read_text())["corpora"] if previous.is_file() else {}
    for corpus in args.corpora:
        results[corpus] = run(corpus, data / corpus, args.cross)
    plot(results, RESULTS / "hybrid.png")
    path = write_result(
        "hybrid",
        {
            "benchmark": "lexical, dense and fused retrieval on BEIR test splits, through the search pipeline",
            "parameters": {
                "fusion_depth": FUSION_DEPTH,
                "rrf_k": 60,
                "alphas": "0.0 .. 1.0 step 0.1",
                "cross": args.cross,
            },
            "corpora": results,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
