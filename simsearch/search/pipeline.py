"""The search pipeline, written once: model inputs, retrieve (filtered), fuse, re-score, hits.

    query ─► model inputs ─► retrievers ─► fuse ─► re-score by the cross-encoder (top k_r) ─► hits
             (encode;        dense          RRF or    (rerank, cur)
              anchor scores) lexical        convex α
                             cur (c · E)

A mode is a :class:`Plan`: which retrievers, whether their lists are fused, whether the cross-encoder
re-scores. A metadata filter is pushed down into every retriever. The service (batched model calls, a
thread pool), the evaluation job and the benchmarks all run :meth:`SearchPipeline.search`; they differ
only in the :class:`~simsearch.search.models.Models` they pass. Blocking work (index search, document
reads) is grouped so that a dense or hybrid search makes one model call with that work right after it
(:meth:`~simsearch.search.models.Models.encode_then`: in the service, on the model's thread when the
request ran alone, else one trip to the thread pool).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simsearch.search.fusion import Fusion, fuse
from simsearch.search.models import NO_CROSS_ENCODER, Models
from simsearch.search.rescore import by_cross_encoder, interpolate
from simsearch.search.retrievers import RETRIEVERS, QueryInputs
from simsearch.search.types import Mode, ModeUnavailableError, Ranked, SearchParams, SearchResult
from simsearch.search.view import SearchView, to_hits

# each retriever's list before fusion: fusing two top-10s would lose what either misses; 1,000 rather than
# 100 adds 0.8 nDCG@10 on SciFact (bench/results/hybrid.json) for about a millisecond of search
FUSION_DEPTH = 1000


@dataclass(frozen=True)
class Plan:
    retrievers: tuple[str, ...]
    rescore: bool = False  # the cross-encoder re-scores the top k_r candidates

    @property
    def needs_cross(self) -> bool:
        return self.rescore or any(RETRIEVERS[r].needs_anchor_scores for r in self.retrievers)


FIRST_STAGES: dict[str, tuple[str, ...]] = {
    "dense": ("dense",),
    "lexical": ("lexical",),
    "hybrid": ("dense", "lexical"),
}
PLANS: dict[str, Plan] = {
    "dense": Plan(("dense",)),
    "lexical": Plan(("lexical",)),
    "hybrid": Plan(("dense", "lexical")),
    "rerank": Plan(("dense",), rescore=True),  # the retrievers are the request's first stage (candidates)
    "cur": Plan(("cur",), rescore=True),
}


def plan_for(params: SearchParams) -> Plan:
    if params.mode == "rerank":
        return Plan(FIRST_STAGES[params.candidates], rescore=True)
    return PLANS[params.mode]


class SearchPipeline:
    """Search one view with injected model calls. ``query_prefix`` goes before the query for the
    bi-encoder only (E5's ``"query: "``); the cross-encoder and BM25 read the query as written."""

    def __init__(
        self,
        query_prefix: str = "",
        cross_query: Callable[[str], str] | None = None,
        rerank_weight: float = 1.0,
        rerank_candidates: str = "dense",
        fusion: Fusion | None = None,
    ) -> None:
        self.query_prefix = query_prefix
        self.fusion = fusion  # fixed by the collection's specification (None: the measured one, or the default)
        # rerank: the cross-encoder's share of the final score (1: the cross-encoder alone); measured per
        # collection and cross-encoder (training.fit_rerank) and recorded in the manifest
        self.rerank_weight = rerank_weight
        self.rerank_candidates = rerank_candidates  # the first stage that weight was measured with
        # the query as the cross-encoder pairs it: cut once to what the model reads (simsearch.models)
        self.cross_query = cross_query

    def unavailable(self, view: SearchView, models: Models, mode: Mode) -> str | None:
        """Why ``mode`` cannot run here, or ``None`` when it can."""
        plan = PLANS[mode]
        if plan.needs_cross and not models.has_cross:
            return getattr(models, "no_cross", NO_CROSS_ENCODER)
        try:
            if "cur" in plan.retrievers:
                view.cur_anchors()
            if "lexical" in plan.retrievers:
                view.lexical("probe", 1)
        except ModeUnavailableError as exc:
            return str(exc)
        return None

    async def search(self, view: SearchView, models: Models, query: str, params: SearchParams) -> SearchResult:
        plan = plan_for(params)
        if plan.needs_cross and not models.has_cross:
            raise ModeUnavailableError(getattr(models, "no_cross", NO_CROSS_ENCODER))
        if not plan.rescore:  # the hot path: one model call, and retrieval and documents in one trip after it
            q = QueryInputs(text=query, filter=params.filter, cross_text=query)

            def retrieve_and_read() -> SearchResult:
                ranking = self._retrieve(view, plan, q, params, params.k)[: params.k]
                keys = [p for p, _ in ranking]
                return SearchResult(to_hits(view.documents(keys), ranking, view.best_passages(keys, q.vector, query)))

            if not any(RETRIEVERS[r].needs_vector for r in plan.retrievers):
                return await models.blocking(retrieve_and_read)

            def with_vector(vectors: np.ndarray) -> SearchResult:
                q.vector = vectors[0]
                return retrieve_and_read()

            return await models.encode_then([self.query_prefix + query], with_vector)
        q = await self._inputs(view, models, query, params, plan)

        def candidates() -> tuple[Ranked, Ranked, list[str]]:
            known: Ranked = []
            if q.anchor_scores is not None:  # anchors were scored exactly; keep those still in the collection
                ok = view.allowed(q.anchor_keys, q.filter)
                best: dict[int, float] = {}  # anchors that are passages of one document: its best one
                for key, s, y in zip(q.anchor_keys, q.anchor_scores, ok, strict=True):
                    if y and float(s) > best.get(key, -np.inf):
                        best[key] = float(s)
                known = list(best.items())
            seen = {key for key, _ in known}
            first = [(p, s) for p, s in self._retrieve(view, plan, q, params, params.k_r) if p not in seen]
            return known, first, view.candidate_texts([p for p, _ in first], q.vector, query)

        known, first, texts = await models.blocking(candidates)
        keys = [p for p, _ in first]
        exact = [float(x) for x in await models.score([(q.cross_text, t) for t in texts])]
        weight = params.rerank_weight
        if weight is None:  # the measured weight, for the first stage it was measured with
            weight = self.rerank_weight if params.candidates == self.rerank_candidates else 1.0
        if params.mode == "rerank" and weight < 1.0:  # the cross-encoder's score blended with the first stage's
            exact = interpolate([s for _, s in first], exact, weight)
        ranking = by_cross_encoder([p for p, _ in known] + keys, [s for _, s in known] + exact, params.k)
        final = [p for p, _ in ranking]
        hits = await models.blocking(
            lambda: to_hits(view.documents(final), ranking, view.best_passages(final, q.vector, query))
        )
        return SearchResult(hits, cross_encoder_calls=len(q.anchor_keys) + len(keys))

    async def _inputs(
        self, view: SearchView, models: Models, query: str, params: SearchParams, plan: Plan
    ) -> QueryInputs:
        """The model calls retrieval needs, each made once: the query vector, the anchors' exact scores."""
        q = QueryInputs(text=query, filter=params.filter, cross_text=query)
        wanted = [RETRIEVERS[r] for r in plan.retrievers]
        cur = any(r.needs_anchor_scores for r in wanted)
        # with passages the vector also picks the passage the cross-encoder reads and the hits show
        if any(r.needs_vector for r in wanted) or (cur and view.cur_missing()) or view.has_passages:
            q.vector = (await models.encode([self.query_prefix + query]))[0]
        if plan.needs_cross and self.cross_query is not None:
            clip = self.cross_query
            q.cross_text = clip(query) if len(query) < 256 else await models.blocking(lambda: clip(query))
        if cur:
            keys, texts = await models.blocking(view.cur_anchors)
            q.anchor_keys = keys
            q.anchor_scores = await models.score([(q.cross_text, t) for t in texts])
        return q

    def _retrieve(self, view: SearchView, plan: Plan, q: QueryInputs, params: SearchParams, depth: int) -> Ranked:
        if len(plan.retrievers) == 1:
            return RETRIEVERS[plan.retrievers[0]].retrieve(view, q, depth)
        fusion = params.fusion or self.fusion or view.default_fusion()
        if fusion.method == "dense":
            return RETRIEVERS["dense"].retrieve(view, q, depth)
        deep = max(depth, FUSION_DEPTH)
        dense = RETRIEVERS["dense"].retrieve(view, q, deep)
        lexical = RETRIEVERS["lexical"].retrieve(view, q, deep)
        return fuse(dense, lexical, fusion)[:depth]
