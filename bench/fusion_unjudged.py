"""Hybrid search on collections nobody has judged: the fusion chosen from the collection itself
(self-supervised inverse-cloze queries, simsearch.evaluation.unjudged) against dense alone, lexical alone,
the old fixed default (convex α = 0.8) and the fusion chosen on judged queries where a benchmark has them.

    python -m bench.fusion_unjudged [--sets scifact dl19 long long-passages lcqmc] [--adaptive]
        [--cross DIR [--cross-backend onnx-int8] [--k-r 100] [--rerank-sets scifact dl19 ...]]

Each benchmark is built by the service's build as a new collection is by default (the default model, documents
longer than 64 tokens in passages), except `long`: the long documents unsplit, cut at the model's window
(`long-passages` is the same set split by default), and `lcqmc`: LCQMC's test pairs as a duplicate-question
retrieval set, with multilingual-e5-small from `make e5` and the chinese analyser. The choices
are made as a collection makes them (the judged one on the train split, the unjudged one from documents
only), and every row is the test split's nDCG@10 through the service's pipeline. Writes
bench/results/fusion_unjudged.json (one row per benchmark: benchmark, dense, lexical, old_default,
unjudged, judged; with --adaptive the per-query weights beside them; with --cross one rerank row per benchmark
and first stage: benchmark, first_stage, rerank_unjudged, with the first stage and the re-ranker alone) and
fusion_unjudged.png (and -rerank.png).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, write_result
from bench.passages import make_long_set
from simsearch.api.spec import CollectionSpec
from simsearch.cli import settings_with
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.data.pairs_retrieval import pairs_to_beir
from simsearch.evaluation.fusion_fit import fit_fusion
from simsearch.evaluation.retrieval import evaluate_beir
from simsearch.evaluation.unjudged import fit_unjudged
from simsearch.index.build import build_index, splitter_for
from simsearch.index.manifest import FusionInfo
from simsearch.models.registry import ModelEntry
from simsearch.search import DirectModels, Fusion, SearchParams, SearchPipeline
from simsearch.search.fusion import DEFAULT_FUSION, fusion_from
from simsearch.serving.runtime import job_model

SETS = {"scifact": "scifact", "dl19": "msmarco-dl19", "long": "scifact", "long-passages": "scifact", "lcqmc": "lcqmc"}
E5 = "models/e5-small"
E5_ENTRY = ModelEntry(path=E5, query_prefix="query: ", document_prefix="query: ", languages=["*"])


def fusion_of(info: FusionInfo) -> Fusion:
    return fusion_from(info)


def describe(info: FusionInfo) -> str:
    if info.method == "convex" and info.beta is not None:
        return f"per query: α {info.alpha}, β {info.beta}"
    if info.method == "convex":
        return "lexical only" if info.alpha == 0 else ("dense only" if info.alpha == 1 else f"convex α {info.alpha}")
    return "dense only" if info.method == "dense" else info.method


def measure(
    name: str,
    data: Path,
    loaded: Any,
    root: Path,
    progress: bool,
    spec: CollectionSpec | None = None,
    adaptive: bool = False,
    cross: Any = None,
    k_r: int = 100,
    rerank_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    encoder = loaded.model
    link = build_index(
        data,
        encoder,
        root,
        name,
        progress=progress,
        model_name=loaded.name,
        spec=spec,
        document_prefix=loaded.entry.document_prefix,
        query_prefix=loaded.entry.query_prefix,
    )
    c = EmbeddedCollection.open(link, writable=False)
    view, models = c.view(), DirectModels(encoder)
    pipeline = SearchPipeline(query_prefix=loaded.entry.query_prefix)

    def ndcg(params: SearchParams) -> float:
        got = evaluate_beir(pipeline, view, models, data, split="test", params=params, progress=False)
        return round(100 * got["ndcg@10"], 2)

    row: dict[str, Any] = {"benchmark": name, "documents": c.index.manifest.count, "model": loaded.name}
    row["dense"] = ndcg(SearchParams(mode="dense"))
    row["lexical"] = ndcg(SearchParams(mode="lexical"))
    row["old_default"] = ndcg(SearchParams(mode="hybrid", fusion=DEFAULT_FUSION))
    started = time.perf_counter()
    unjudged = fit_unjudged(
        view,
        encoder.encode,
        splitter_for(encoder, spec, loaded.entry.document_prefix),
        query_prefix=loaded.entry.query_prefix,
        document_prefix=loaded.entry.document_prefix,
    )
    row["unjudged_seconds"] = round(time.perf_counter() - started, 1)
    row["unjudged"] = ndcg(SearchParams(mode="hybrid", fusion=fusion_of(unjudged))) if unjudged else row["old_default"]
    row["unjudged_choice"] = describe(unjudged) if unjudged else "default (too few documents)"
    row["unjudged_validation"] = unjudged.validation if unjudged else None
    row["judged"] = row["judged_choice"] = None
    if (data / "qrels" / "train.tsv").is_file():
        judged = fit_fusion(view, models, data, split="train", query_prefix=loaded.entry.query_prefix, progress=False)
        row["judged"] = ndcg(SearchParams(mode="hybrid", fusion=fusion_of(judged)))
        row["judged_choice"] = describe(judged)
    row["better_single"] = max(row["dense"], row["lexical"])
    if cross is not None and rerank_rows is not None:
        chosen = fusion_of(unjudged) if unjudged else DEFAULT_FUSION
        for first in ("dense", "hybrid"):
            rerank_rows.append(measure_rerank(name, view, loaded, data, spec, cross, first, chosen, k_r, row))
            print(json.dumps({k: v for k, v in rerank_rows[-1].items() if k != "validation"}), flush=True)
    if adaptive:
        row.update(measure_adaptive(view, models, data, loaded, spec, unjudged))
    c.close()
    return row


def measure_rerank(
    name: str,
    view: Any,
    loaded: Any,
    data: Path,
    spec: CollectionSpec | None,
    cross: Any,
    first: str,
    fusion: Fusion,
    k_r: int,
    row: dict[str, Any],
) -> dict[str, Any]:
    """The re-ranker over one first stage: alone (w = 1, what a collection without a measured weight used),
    and blended at the weight chosen without judgments (simsearch.evaluation.unjudged), as ``training.fit_rerank``
    without ``--data`` chooses it; the first stage alone beside them. The cross-encoder reads each candidate's
    best passage."""
    from simsearch.evaluation.unjudged import choose_rerank_weight_unjudged, live_documents

    encoder = loaded.model
    pipeline = SearchPipeline(query_prefix=loaded.entry.query_prefix, cross_query=cross.cross.clip)
    models = DirectModels(encoder, cross)
    searcher = getattr(view, "lexical_searcher", None)
    started = time.perf_counter()
    found = choose_rerank_weight_unjudged(
        live_documents(view, 2000),
        encoder.encode,
        cross.score,
        splitter_for(encoder, spec, loaded.entry.document_prefix),
        first_stage=first,
        k_r=k_r,
        query_prefix=loaded.entry.query_prefix,
        document_prefix=loaded.entry.document_prefix,
        analyser_name=searcher.analyser_name if searcher is not None else "english",
        fusion=fusion,
    )
    seconds = round(time.perf_counter() - started, 1)
    weight = found["weight"] if found else 1.0

    def ndcg(w: float) -> float:
        params = SearchParams(mode="rerank", candidates=first, fusion=fusion, k_r=k_r, rerank_weight=w)  # type: ignore[arg-type]
        got = evaluate_beir(pipeline, view, models, data, split="test", params=params, progress=False)
        return round(100 * got["ndcg@10"], 2)

    alone = ndcg(1.0)
    return {
        "benchmark": name,
        "first_stage": first,
        "first_stage_ndcg": row["dense"] if first == "dense" else row["unjudged"],
        "rerank_alone": alone,
        "rerank_unjudged": alone if weight == 1.0 else ndcg(weight),
        "unjudged_weight": weight,
        "unjudged_seconds": seconds,
        "chosen_on": found["chosen_on"] if found else "default (too few documents to draw queries from)",
        "validation": found["validation"] if found else None,
        "k_r": k_r,
    }


def measure_adaptive(
    view: Any, models: Any, data: Path, loaded: Any, spec: CollectionSpec | None, chosen: FusionInfo | None
) -> dict[str, Any]:
    """Beside the collection's choice (with per-query weights where they were kept): the collection-wide
    choice alone (``unjudged_fixed``), the per-query weights' cost, and the best per-query rule chosen on the
    test split itself (what per-query weighting could give at most with these features)."""
    from bench.fusion_adaptive import evaluate
    from simsearch.data.beir import load_qrels, load_queries
    from simsearch.evaluation.fusion_fit import ALPHAS, BETAS, gap_medians, ids_of, retrieve_lists

    encoder = loaded.model
    wide = fit_unjudged(
        view,
        encoder.encode,
        splitter_for(encoder, spec, loaded.entry.document_prefix),
        query_prefix=loaded.entry.query_prefix,
        document_prefix=loaded.entry.document_prefix,
        per_query_weights=False,
    )
    qrels = load_qrels(data, "test")
    queries = {q: t for q, t in load_queries(data).items() if q in qrels}
    lists = retrieve_lists(view, models, queries, loaded.entry.query_prefix)
    id_of = ids_of(view, lists)
    rule = fusion_of(chosen) if chosen else DEFAULT_FUSION
    _, micros, alphas = evaluate(rule, lists, id_of, qrels)
    md, ml = gap_medians(list(lists.values()))
    on_test = {
        (a, b): evaluate(Fusion("convex", a, beta=b, dense_gap=md, lexical_gap=ml), lists, id_of, qrels)[0]
        for a in ALPHAS[1:-1]
        for b in BETAS
    }
    (ba, bb), best = max(on_test.items(), key=lambda kv: kv[1])
    return {
        "unjudged_fixed": ndcg_of(view, models, data, loaded, fusion_of(wide)) if wide else None,
        "unjudged_fixed_choice": describe(wide) if wide else None,
        "per_query_us": micros,
        "per_query_alpha_quartiles": [round(float(x), 3) for x in np.percentile(alphas, [25, 50, 75])],
        "per_query_best_on_test": {
            "alpha": ba,
            "beta": bb,
            "ndcg": best,
            "best_fixed_alpha_ndcg": max(v for (_, b), v in on_test.items() if b == 0.0),
        },
    }


def ndcg_of(view: Any, models: Any, data: Path, loaded: Any, fusion: Fusion) -> float:
    pipeline = SearchPipeline(query_prefix=loaded.entry.query_prefix)
    params = SearchParams(mode="hybrid", fusion=fusion)
    got = evaluate_beir(pipeline, view, models, data, split="test", params=params, progress=False)
    return round(100 * got["ndcg@10"], 2)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    below = {r["benchmark"]: round(r["unjudged"] - r["better_single"], 2) for r in rows}
    judged_gap = {r["benchmark"]: round(r["unjudged"] - r["judged"], 2) for r in rows if r["judged"] is not None}
    mean_unjudged = float(np.mean([r["unjudged"] for r in rows]))
    mean_best = float(np.mean([r["better_single"] for r in rows]))
    mean_old = float(np.mean([r["old_default"] for r in rows]))
    return {
        "unjudged_minus_better_single": below,
        "unjudged_minus_judged": judged_gap,
        "mean": {
            "unjudged": round(mean_unjudged, 2),
            "better_single": round(mean_best, 2),
            "old_default": round(mean_old, 2),
        },
        "goals": {
            "never_below_better_single_by_0.5": all(v >= -0.5 for v in below.values()),
            "average_at_least_better_single": mean_unjudged >= mean_best,
            "within_1_of_judged": all(abs(v) <= 1.0 for v in judged_gap.values()),
        },
    }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = ["dense", "lexical", "old_default", "unjudged", "judged"]
    if any(r.get("unjudged_fixed") is not None for r in rows):  # --adaptive: the collection-wide choice beside
        methods.insert(3, "unjudged_fixed")
    fig, ax = plt.subplots(figsize=(2.6 * len(rows) + 2, 4.2))
    x = np.arange(len(rows))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        values = [r.get(m) or 0 for r in rows]
        bars = ax.bar(x + (i - (len(methods) - 1) / 2) * width, values, width, label=m.replace("_", " "))
        for b, r in zip(bars, rows, strict=True):
            if r.get(m) is None:
                b.set_alpha(0)
    ax.set_xticks(x, [r["benchmark"] for r in rows])
    ax.set_ylabel("nDCG@10 (test)")
    ax.set_ylim(0, 100)
    ax.legend(ncol=5, loc="upper center", fontsize=8)
    ax.set_title("Hybrid fusion chosen without judgments (self-supervised) against the alternatives")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_rerank(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = {
        "first_stage_ndcg": "first stage",
        "rerank_alone": "re-ranker alone (w = 1)",
        "rerank_unjudged": "unjudged w",
    }
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 4.2))
    x = np.arange(len(rows))
    width = 0.26
    for i, (key, label) in enumerate(methods.items()):
        ax.bar(x + (i - 1) * width, [r[key] for r in rows], width, label=label)
    ax.set_xticks(x, [f"{r['benchmark']}\n{r['first_stage']} (w {r['unjudged_weight']})" for r in rows], fontsize=8)
    ax.set_ylabel("nDCG@10 (test)")
    ax.set_ylim(0, 100)
    ax.legend(ncol=3, loc="upper center", fontsize=8)
    ax.set_title("Re-ranking with the weight chosen without judgments")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    p.add_argument("--result", default="fusion_unjudged")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--add",
        action="store_true",
        help="keep the existing result's rows of the benchmarks not run now (each row records its own run)",
    )
    p.add_argument("--cross", help="a cross-encoder (folder): also the rerank rows (benchmark, first_stage, ...)")
    p.add_argument(
        "--cross-backend", choices=["torch", "onnx", "onnx-int8"], help="its runtime (default: the service's)"
    )
    p.add_argument("--k-r", type=int, default=100, help="candidates the cross-encoder re-scores")
    p.add_argument(
        "--rerank-sets",
        nargs="+",
        choices=list(SETS),
        default=["scifact", "dl19", "long", "long-passages"],
        help="benchmarks with rerank rows (LCQMC's one-sentence documents give no self-supervised queries, and "
        "the cross-encoder trained here is English)",
    )
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="also per-query fusion weights chosen on the same self-supervised queries (bench.fusion_adaptive)",
    )
    args = p.parse_args(argv)
    settings = settings_with()
    loaded = job_model(settings)
    rows: list[dict[str, Any]] = []
    rerank_rows: list[dict[str, Any]] = []
    cross = None
    if args.cross:
        from bench.reranker import CachedScorer
        from simsearch.models.cross_encoder import CrossScorer

        cross = CachedScorer(
            CrossScorer.load(
                args.cross, batch_size=settings.encode_batch_size, backend=args.cross_backend or settings.backend
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            # each benchmark as a user's collection is made by default (documents over 64 tokens in passages),
            # except `long`: its documents unsplit, cut at the model's window (where one list is far worse)
            data, spec, model = settings.data_dir / SETS[name], CollectionSpec(), loaded
            if name.startswith("long"):
                data = make_long_set(data, Path(tmp) / "long-data", loaded.model.model.tokenizer)
                spec = CollectionSpec(passages="none") if name == "long" else CollectionSpec()
            elif name == "lcqmc":
                if not Path(E5, "config.json").is_file():
                    print(f"lcqmc skipped: {E5} is missing (make e5)", file=sys.stderr)
                    continue
                data = Path(tmp) / "lcqmc-data"
                pairs_to_beir(settings.data_dir / SETS[name] / "test.tsv", data, max_documents=5000)
                with_e5 = settings.model_copy(update={"models": {**settings.models, "e5-small": E5_ENTRY}})
                model = job_model(with_e5, "e5-small")
                spec = CollectionSpec(model="e5-small", analyser="chinese")
            row = measure(
                name,
                data,
                model,
                Path(tmp) / "indexes",
                not args.no_progress,
                spec,
                args.adaptive,
                cross if name in args.rerank_sets else None,
                args.k_r,
                rerank_rows,
            )
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "unjudged_validation"}), flush=True)
    if args.add and (RESULTS / f"{args.result}.json").is_file():
        earlier = json.loads((RESULTS / f"{args.result}.json").read_text())
        kept = [r for r in earlier["rows"] if r["benchmark"] not in args.sets]
        for r in kept:
            r.setdefault("run", earlier.get("environment", {}).get("date"))
        rows = [*kept, *rows]
        rows.sort(key=lambda r: list(SETS).index(r["benchmark"]))
    if args.add and (RESULTS / f"{args.result}.json").is_file() and not rerank_rows:
        rerank_rows = json.loads((RESULTS / f"{args.result}.json").read_text()).get("rerank_rows", [])
    summary = summarise(rows)
    if rerank_rows:
        summary["rerank"] = {
            "unjudged_minus_first_stage": {
                f"{r['benchmark']}/{r['first_stage']}": round(r["rerank_unjudged"] - r["first_stage_ndcg"], 2)
                for r in rerank_rows
            },
            "unjudged_minus_alone": {
                f"{r['benchmark']}/{r['first_stage']}": round(r["rerank_unjudged"] - r["rerank_alone"], 2)
                for r in rerank_rows
            },
        }
    print(json.dumps(summary, indent=2))
    out = write_result(
        args.result,
        {
            "rows": rows,
            "rerank_rows": rerank_rows,
            "summary": summary,
            "parameters": {
                "sets": args.sets,
                "add": args.add,
                "adaptive": args.adaptive,
                "cross": args.cross,
                "cross_backend": args.cross_backend,
                "k_r": args.k_r,
                "rerank_sets": args.rerank_sets,
            },
        },
    )
    plot(rows, RESULTS / f"{args.result}.png")
    if rerank_rows:
        plot_rerank(rerank_rows, RESULTS / f"{args.result}-rerank.png")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
