"""Choosing a collection's fusion by measurement: every candidate on a validation split, the best kept.

Candidates: dense only, reciprocal rank fusion (k = 60), and the convex combination at α = 0, 0.1, ..., 1
(α = 0 is lexical only). Each query's dense and lexical lists are retrieved once, to the fusion depth the
pipeline uses, by the pipeline's own retrievers; every candidate is then the pipeline's ``fuse`` of those
lists. The best nDCG@10 wins; ties go to the simpler candidate (dense, then RRF, then the convex
combination with the largest α). A collection without judgments keeps :data:`DEFAULT_FUSION`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from simsearch.data.beir import load_qrels, load_queries
from simsearch.evaluation.metrics import evaluate_run
from simsearch.index.manifest import FusionInfo, Manifest
from simsearch.search import Fusion, Models, SearchView, run_sync
from simsearch.search.fusion import DEFAULT_FUSION, fuse
from simsearch.search.pipeline import FUSION_DEPTH
from simsearch.search.retrievers import RETRIEVERS, QueryInputs

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


def score_fusions(
    view: SearchView,
    lists: dict[str, tuple[list[tuple[int, float]], list[tuple[int, float]]]],
    qrels: dict[str, dict[str, int]],
    fusions: dict[str, Fusion],
) -> dict[str, dict[str, float]]:
    """nDCG@10 and Recall@100 of each fusion over the retrieved lists."""
    id_of: dict[int, str] = {}
    keys = {k for d, lex in lists.values() for k, _ in (*d, *lex)}
    id_of.update(zip(sorted(keys), (doc.id if doc else "" for doc in view.documents(sorted(keys))), strict=True))
    scores = {}
    for name, fusion in fusions.items():
        run = {qid: [id_of[k] for k, _ in fuse(d, lex, fusion)[:FUSION_DEPTH]] for qid, (d, lex) in lists.items()}
        m = evaluate_run(run, {q: qrels[q] for q in run}, ndcg_k=10, recall_k=100)
        scores[name] = {"ndcg@10": round(100 * m["ndcg@10"], 2), "recall@100": round(100 * m["recall@100"], 2)}
    return scores


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
    """The best fusion for this collection on ``data``'s ``split`` judgments (see the module docstring)."""
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
