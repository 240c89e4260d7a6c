"""Choosing a collection's fusion by measurement: every candidate on a validation split, the best kept.

Candidates: dense only, reciprocal rank fusion (k = 60), and the convex combination at α = 0, 0.1, ..., 1
(α = 0 is lexical only). Each query's dense and lexical lists are retrieved once, to the fusion depth the
pipeline uses, by the pipeline's own retrievers; every candidate is then the pipeline's ``fuse`` of those
lists. The best nDCG@10 wins; ties go to the simpler candidate (dense, then RRF, then the convex
combination with the largest α). A collection without judgments keeps :data:`DEFAULT_FUSION`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from simsearch.data.beir import load_qrels, load_queries
from simsearch.evaluation.metrics import evaluate_run, ndcg_at_k
from simsearch.index.manifest import FusionInfo, Manifest
from simsearch.search import Fusion, Models, SearchView, run_sync
from simsearch.search.fusion import DEFAULT_FUSION, GAP_EPS, fuse, gaps
from simsearch.search.pipeline import FUSION_DEPTH
from simsearch.search.retrievers import RETRIEVERS, QueryInputs
from simsearch.search.types import Ranked

log = logging.getLogger(__name__)
ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))


def candidates(rrf_k: int = 60) -> dict[str, Fusion]:
    out = {"dense": Fusion("dense"), "rrf": Fusion("rrf", rrf_k=rrf_k)}
    out.update({f"convex-{a:.1f}": Fusion("convex", alpha=a) for a in sorted(ALPHAS, reverse=True)})
    return out


def retrieve_lists(
    view: SearchView, models: Models, queries: dict[str, str], query_prefix: str = "", progress: bool = False
) -> dict[str, tuple[list[tuple[int, float]], list[tuple[int, float]]]]:
    """Each query's dense and lexical lists, as the pipeline retrieves them before fusing."""
    out = {}
    for qid, text in tqdm(queries.items(), desc="dense + lexical", unit="query", disable=not progress):
        q = QueryInputs(text=text, vector=run_sync(models.encode([query_prefix + text]))[0])
        out[qid] = (
            RETRIEVERS["dense"].retrieve(view, q, FUSION_DEPTH),
            RETRIEVERS["lexical"].retrieve(view, q, FUSION_DEPTH),
        )
    return out


def ids_of(view: SearchView, lists: dict[str, tuple[Ranked, Ranked]]) -> dict[int, str]:
    """The document id of every key in the lists."""
    keys = sorted({k for d, lex in lists.values() for k, _ in (*d, *lex)})
    return dict(zip(keys, (doc.id if doc else "" for doc in view.documents(keys)), strict=True))


def score_fusions(
    view: SearchView,
    lists: dict[str, tuple[list[tuple[int, float]], list[tuple[int, float]]]],
    qrels: dict[str, dict[str, int]],
    fusions: dict[str, Fusion],
) -> dict[str, dict[str, float]]:
    """nDCG@10 and Recall@100 of each fusion over the retrieved lists."""
    id_of = ids_of(view, lists)
    scores = {}
    for name, fusion in fusions.items():
        run = {qid: [id_of[k] for k, _ in fuse(d, lex, fusion)[:FUSION_DEPTH]] for qid, (d, lex) in lists.items()}
        m = evaluate_run(run, {q: qrels[q] for q in run}, ndcg_k=10, recall_k=100)
        scores[name] = {"ndcg@10": round(100 * m["ndcg@10"], 2), "recall@100": round(100 * m["recall@100"], 2)}
    return scores


BETAS = (-1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 2.0)
Lists = Sequence[tuple[list[tuple[int, float]], list[tuple[int, float]]]]


def gap_medians(lists: Lists) -> tuple[float, float]:
    """The collection's median dense and lexical gaps (simsearch.search.fusion.gaps) over these queries."""
    both = np.array([gaps(d, lex) for d, lex in lists])
    return float(np.median(both[:, 0])) + GAP_EPS, float(np.median(both[:, 1])) + GAP_EPS


def fixed_alpha_of(chosen: Fusion) -> float:
    """The convex weight per-query weights are compared with: the chosen one's (dense only: 1; RRF: the default)."""
    return chosen.alpha if chosen.method == "convex" else 1.0 if chosen.method == "dense" else DEFAULT_FUSION.alpha


def choose_per_query(lists: Lists, fixed_alpha: float) -> tuple[Fusion | None, dict[str, Any]]:
    """Per-query weights (simsearch.search.fusion.query_alpha): ``α`` and ``β`` with the best nDCG@10 on the
    self-supervised queries (query ``i``'s answer is pool member ``i``), kept only when better than the convex
    combination at ``fixed_alpha`` with ``β = 0`` (both inside [0.02, 0.98], where per-query weights move) by
    more than one standard error of the paired per-query difference; ``None`` when not kept. Measured on five
    benchmarks beside the collection-wide choice (bench.fusion_unjudged ``--adaptive``)."""
    md, ml = gap_medians(lists)

    def per_query(alpha: float, beta: float) -> np.ndarray:
        # β = 0 through the same formula: a fixed α of 0 or 1 is compared at 0.02 or 0.98, as it can move
        rule = Fusion("convex", alpha=alpha, beta=beta if beta else 1e-12, dense_gap=md, lexical_gap=ml)
        ranked = [fuse(d, lex, rule)[:10] for d, lex in lists]
        return np.array([ndcg_at_k([str(k) for k, _ in r], {str(i): 1}, 10) for i, r in enumerate(ranked)])

    base = per_query(fixed_alpha, 0.0)
    grid = {(a, b): per_query(a, b) for a in ALPHAS[1:-1] for b in BETAS}
    (a, b), best = max(grid.items(), key=lambda kv: (float(kv[1].mean()), -abs(kv[0][1])))
    diff = best - base
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    kept = float(diff.mean()) > se
    figures = {
        "queries": len(lists),
        "fixed_alpha": fixed_alpha,
        "fixed": round(100 * float(base.mean()), 2),
        "best": {"alpha": a, "beta": b, "ndcg": round(100 * float(best.mean()), 2)},
        "standard_error": round(100 * se, 2),
        "kept": kept,
        "dense_gap": round(md, 4),
        "lexical_gap": round(ml, 4),
    }
    if not kept:
        return None, figures
    return Fusion("convex", alpha=a, beta=b, dense_gap=md, lexical_gap=ml), figures


def fit_fusion(
    view: SearchView,
    models: Models,
    data: Path,
    *,
    split: str = "train",
    query_prefix: str = "",
    rrf_k: int = 60,
    progress: bool = True,
) -> FusionInfo:
    """The best fusion for this collection on ``data``'s ``split`` judgments (see the module docstring). Per-query
    weights are not tried here: on SciFact's 809 train claims they were kept by a hair (+0.13, one standard
    error 0.12) and scored 74.35 on the test claims against the fixed α's 74.44 (docs/results/fusion-unjudged.md)."""
    all_queries, qrels = load_queries(data), load_qrels(data, split)
    queries = {q: all_queries[q] for q in sorted(qrels) if q in all_queries}
    if not queries:
        raise ValueError(f"{data} has no judged queries in split {split!r}")
    lists = retrieve_lists(view, models, queries, query_prefix, progress)
    fusions = candidates(rrf_k)
    scores = score_fusions(view, lists, qrels, fusions)
    order = list(fusions)  # the preference among equals: simpler first
    best = max(order, key=lambda name: (scores[name]["ndcg@10"], -order.index(name)))
    chosen = fusions[best]
    validation: dict[str, Any] = {name: s["ndcg@10"] for name, s in scores.items()}
    return FusionInfo(
        method=chosen.method,
        alpha=chosen.alpha if chosen.method == "convex" else None,
        rrf_k=chosen.rrf_k,
        chosen_on=f"{data.name}:{split} ({len(queries)} queries, nDCG@10)",
        validation=validation,
    )


def default_fusion_info() -> FusionInfo:
    return FusionInfo(
        method=DEFAULT_FUSION.method,
        alpha=DEFAULT_FUSION.alpha,
        rrf_k=DEFAULT_FUSION.rrf_k,
        chosen_on="default",
        validation={},
    )


def choose_and_publish(index_path: Path, info: FusionInfo) -> Path:
    """A new build of the index whose manifest records ``info`` (atomically, like every build)."""
    from simsearch.index.publish import publish_derived

    def update(m: Manifest) -> Manifest:
        return m.model_copy(update={"fusion": info})

    return publish_derived(index_path, lambda _folder: [], update)


MIN_JUDGED_QUERIES = 20  # fewer judged queries cannot tell the candidates apart (3 once chose "dense only")


def judged_queries(corpus: Path, split: str) -> tuple[Path, int] | None:
    """The BEIR folder of ``corpus`` and how many queries ``split`` judges, or ``None`` without judgments."""
    folder = corpus if corpus.is_dir() else corpus.parent
    if not (folder / "qrels" / f"{split}.tsv").is_file() or not (folder / "queries.jsonl").is_file():
        return None
    queries, qrels = load_queries(folder), load_qrels(folder, split)
    return folder, sum(1 for q in qrels if q in queries)


def fusion_at_build(
    corpus: Path,
    models: Models,
    *,
    query_prefix: str,
    split: str = "train",
    progress: bool = False,
    unjudged: UnjudgedFit | None = None,
) -> Callable[[Path, Manifest], Manifest] | None:
    """What a build does before it publishes: measure hybrid search's fusion and record it in the same build
    (one build, not two): on the BEIR folder's judgments for ``split`` when it has them, else on
    self-supervised queries from the documents (``unjudged``: the collection's model and splitting; ``None``
    keeps the stated default). With fewer than :data:`MIN_JUDGED_QUERIES` judged queries the build says so and
    measures without them."""
    found = judged_queries(corpus, split)
    if found is None:
        return unjudged_at_build(unjudged) if unjudged is not None else None
    folder, count = found
    if count < MIN_JUDGED_QUERIES:
        log.warning(
            "%s/qrels/%s.tsv judges %d queries, too few to choose hybrid's fusion (at least %d): %s",
            folder,
            split,
            count,
            MIN_JUDGED_QUERIES,
            "it is measured on self-supervised queries instead"
            if unjudged is not None
            else f"the build keeps the stated default (convex alpha {DEFAULT_FUSION.alpha})",
        )
        return unjudged_at_build(unjudged) if unjudged is not None else None

    log.warning(
        "after encoding, hybrid search's fusion will be measured on the %d judged queries of %s/qrels/%s.tsv "
        "and recorded in the same build (--fusion-split none skips this)",
        count,
        folder,
        split,
    )

    def finish(tmp: Path, manifest: Manifest) -> Manifest:
        log.warning(
            "measuring hybrid search's fusion on the %d judged queries of %s/qrels/%s.tsv before publishing "
            "(--fusion-split none skips this)",
            count,
            folder,
            split,
        )
        view, close = staged_view(tmp, manifest)
        try:
            info = fit_fusion(view, models, folder, split=split, query_prefix=query_prefix, progress=progress)
        finally:
            close()
        log.warning("hybrid fusion: %s alpha=%s (%s)", info.method, info.alpha, info.chosen_on)
        return manifest.model_copy(update={"fusion": info})

    return finish


@dataclass(frozen=True)
class UnjudgedFit:
    """What a self-supervised fit needs of the collection: its model's encode, passage splitting, prefixes."""

    encode: Callable[[list[str]], Any]
    splitter: Any
    query_prefix: str = ""
    document_prefix: str = ""


def unjudged_at_build(fit: UnjudgedFit) -> Callable[[Path, Manifest], Manifest]:
    from simsearch.evaluation.unjudged import fit_unjudged

    log.warning(
        "after encoding, hybrid search's fusion will be measured on self-supervised queries drawn from the "
        "documents (no judgments given; --fusion-split none skips this)"
    )

    def finish(tmp: Path, manifest: Manifest) -> Manifest:
        view, close = staged_view(tmp, manifest)
        try:
            info = fit_unjudged(
                view,
                fit.encode,
                fit.splitter,
                query_prefix=fit.query_prefix,
                document_prefix=fit.document_prefix,
            )
        finally:
            close()
        if info is None:
            return manifest
        log.warning("hybrid fusion: %s alpha=%s (%s)", info.method, info.alpha, info.chosen_on)
        return manifest.model_copy(update={"fusion": info})

    return finish


def staged_view(folder: Path, manifest: Manifest) -> tuple[SearchView, Callable[[], None]]:
    """A search view of a build folder that is not published yet (its files written, its manifest too)."""
    from simsearch.collection.delta import DeltaState
    from simsearch.collection.view import BaseSegment, CollectionView
    from simsearch.index.open import open_index
    from simsearch.lexical import LexicalIndex

    index = open_index(folder, verify=False)
    lexical = (
        LexicalIndex(folder / "lexical", analyser_name=manifest.lexical.analyser)
        if manifest.lexical is not None
        else None
    )
    state = DeltaState.empty(manifest.sequence, manifest.count, manifest.model.dimension)
    view = CollectionView(manifest.name, BaseSegment(index), state, lexical.searcher() if lexical else None)

    def close() -> None:
        if lexical is not None:
            lexical.close()
            for lock in (folder / "lexical").glob(".tantivy-*.lock"):  # a reader's; a build holds none
                lock.unlink()
        index.close()

    return view, close
