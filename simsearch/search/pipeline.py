"""The search pipeline, written once: retrieve, (fuse), re-score, hits.

    query ─► model inputs ─► retrievers ─► re-score by the cross-encoder (top k_r) ─► hits

A mode is a :class:`Plan`: which retrievers, and whether the cross-encoder re-scores. The service
(batched model calls, a thread pool), the evaluation job and the benchmarks all run
:meth:`SearchPipeline.search`; they differ only in the :class:`~simsearch.search.models.Models` they
pass. Blocking work (ANN search, document reads) is grouped so that a dense search makes one model call
and one trip to the thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from simsearch.search.models import NO_CROSS_ENCODER, Models
from simsearch.search.rescore import by_cross_encoder
from simsearch.search.retrievers import RETRIEVERS, QueryInputs
from simsearch.search.types import Mode, ModeUnavailableError, Ranked, SearchParams, SearchResult
from simsearch.search.view import SearchView, to_hits


@dataclass(frozen=True)
class Plan:
    retrievers: tuple[str, ...]
    rescore: bool = False  # the cross-encoder re-scores the top k_r candidates

    @property
    def needs_cross(self) -> bool:
        return self.rescore or any(RETRIEVERS[r].needs_anchor_scores for r in self.retrievers)


PLANS: dict[str, Plan] = {
    "dense": Plan(("dense",)),
    "rerank": Plan(("dense",), rescore=True),
    "cur": Plan(("cur",), rescore=True),
}


class SearchPipeline:
    """Search one view with injected model calls. ``query_prefix`` goes before the query for the
    bi-encoder only (E5's ``"query: "``); the cross-encoder reads the query as written."""

    def __init__(self, query_prefix: str = "") -> None:
        self.query_prefix = query_prefix

    def unavailable(self, view: SearchView, models: Models, mode: Mode) -> str | None:
        """Why ``mode`` cannot run here, or ``None`` when it can."""
        plan = PLANS[mode]
        if plan.needs_cross and not models.has_cross:
            return NO_CROSS_ENCODER
        if "cur" in plan.retrievers:
            try:
                view.cur_anchors()
            except ModeUnavailableError as exc:
                return str(exc)
        return None

    async def search(self, view: SearchView, models: Models, query: str, params: SearchParams) -> SearchResult:
        plan = PLANS[params.mode]
        if plan.needs_cross and not models.has_cross:
            raise ModeUnavailableError(NO_CROSS_ENCODER)
        q = await self._inputs(view, models, query, plan)
        known: Ranked = []
        if q.anchor_scores is not None:
            known = [(key, float(s)) for key, s in zip(q.anchor_keys, q.anchor_scores, strict=True)]
        if not plan.rescore:  # the hot path: one model call, then one trip for retrieval and documents

            def retrieve_and_read() -> SearchResult:
                ranking = self._retrieve(view, plan, q, params.k)[: params.k]
                return SearchResult(to_hits(view.documents([p for p, _ in ranking]), ranking))

            return await models.blocking(retrieve_and_read)

        def candidates() -> tuple[list[int], list[str]]:
            keys = [p for p, _ in self._retrieve(view, plan, q, params.k_r)]
            return keys, view.texts(keys)

        keys, texts = await models.blocking(candidates)
        exact = await models.score([(query, t) for t in texts])
        ranking = by_cross_encoder(
            [p for p, _ in known] + keys, [s for _, s in known] + [float(x) for x in exact], params.k
        )
        hits = await models.blocking(lambda: to_hits(view.documents([p for p, _ in ranking]), ranking))
        return SearchResult(hits, cross_encoder_calls=len(known) + len(keys))

    async def _inputs(self, view: SearchView, models: Models, query: str, plan: Plan) -> QueryInputs:
        """The model calls retrieval needs, each made once: the query vector, the anchors' exact scores."""
        q = QueryInputs(text=query)
        wanted = [RETRIEVERS[r] for r in plan.retrievers]
        if any(r.needs_vector for r in wanted):
            q.vector = (await models.encode([self.query_prefix + query]))[0]
        if any(r.needs_anchor_scores for r in wanted):
            keys, texts = await models.blocking(view.cur_anchors)
            q.anchor_keys = keys
            q.anchor_scores = await models.score([(query, t) for t in texts])
        return q

    @staticmethod
    def _retrieve(view: SearchView, plan: Plan, q: QueryInputs, depth: int) -> Ranked:
        lists = [RETRIEVERS[name].retrieve(view, q, depth) for name in plan.retrievers]
        return lists[0]
