"""Search and similarity: validate, make one call into the engine, return a typed response.

Model calls go through the engine's micro-batchers, which run them on their own thread; the routes are
``async`` only to await them, and every other blocking step (tokenising for the truncation report,
FAISS, SQLite) runs in the thread pool, or for a lone search on the model's thread right after its
model call, so the event loop stays free. Each route exists twice: under ``/collections/{name}`` and,
for the default collection, where the first version of the API had it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from service.access import READ, READ_ANY
from service.deps import check_lengths, collection_of, engine
from service.errors import reject
from simsearch.api.schemas import (
    PassageOut,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SimilarityRequest,
    SimilarityResponse,
)
from simsearch.collection.filters import FilterError, parse_filter
from simsearch.models.registry import UnknownModelError
from simsearch.search import Fusion, Hit, ModeUnavailableError, SearchParams
from simsearch.serving.engine import Engine

router = APIRouter()

# parameters that only some modes read: sending one with another mode is a mistake, not ignored
ONLY_FOR = {
    "fusion": ("hybrid", "rerank"),
    "rerank_weight": ("rerank",),
    "k_r": ("rerank", "cur"),
    "candidates": ("rerank",),
}


async def run_search(body: SearchRequest, request: Request, eng: Engine, name: str | None) -> SearchResponse:
    col = collection_of(eng, name)
    settings = eng.settings
    check_lengths(settings, [(("body", "query"), body.query)])
    limit = settings.max_rerank
    if body.k_r is not None and body.k_r > limit:
        reject(("body", "k_r"), f"{body.k_r} candidates; the limit is {limit} (SIMSEARCH_MAX_RERANK)", kind="too_large")
    for field, modes in ONLY_FOR.items():
        if field in body.model_fields_set and getattr(body, field) is not None and body.mode not in modes:
            reject(("body", field), f"is read by mode {' or '.join(modes)} only, not {body.mode}", kind="not_used")
    if body.fusion is not None and body.mode == "rerank" and body.candidates != "hybrid":
        reject(("body", "fusion"), "rerank reads it only with candidates hybrid", kind="not_used")
    started = time.perf_counter()
    try:
        flt = parse_filter(body.filter)
    except FilterError as exc:
        reject(("body", *exc.path.split(".")), exc.problem, kind="filter_invalid")
    fusion = Fusion(body.fusion.method, body.fusion.alpha, body.fusion.rrf_k) if body.fusion else None
    params = SearchParams(
        k=body.k,
        mode=body.mode,
        k_r=body.k_r or min(100, limit),
        candidates=body.candidates,
        filter=flt,
        fusion=fusion,
        rerank_weight=body.rerank_weight,
    )
    try:
        outcome = await col.search(body.query, params)
    except ModeUnavailableError as exc:
        reject(("body", exc.field), str(exc), kind="unavailable")
    result = outcome.result
    elapsed = time.perf_counter() - started
    metrics = request.app.state.metrics
    metrics.cross_calls.inc(result.cross_encoder_calls)
    metrics.searches.labels(col.name, body.mode).inc()
    metrics.search_seconds.labels(col.name).observe(elapsed)
    truncated = await col.query_truncated(body.query)  # after the search was admitted: a 429 costs no tokenising
    return SearchResponse(
        hits=[hit_out(h) for h in result.hits],
        took_ms=round(1000 * elapsed, 3),
        collection=outcome.runtime.name,
        index=outcome.runtime.name,
        truncated=truncated,
        mode=body.mode,
        cross_encoder_calls=result.cross_encoder_calls,
        terms=col.query_terms(body.query),
    )


def hit_out(h: Hit) -> SearchHit:
    p = h.passage
    passage = PassageOut(index=p.index, start=p.start, end=p.end, text=h.text[p.start : p.end]) if p else None
    return SearchHit(id=h.id, score=h.score, title=h.title, text=h.text, metadata=h.metadata, passage=passage)


SEARCH_DOC = """The `k` best documents for the query: by bi-encoder cosine (`dense`), BM25 (`lexical`), both
fused (`hybrid`), re-ranked by the cross-encoder (`rerank`), or by the CUR approximation of the
cross-encoder (`cur`)."""


@router.post(
    "/collections/{name}/search",
    response_model=SearchResponse,
    tags=["search"],
    description=SEARCH_DOC,
    dependencies=[READ],
)
async def search_collection(
    name: str, body: SearchRequest, request: Request, eng: Annotated[Engine, Depends(engine)]
) -> SearchResponse:
    return await run_search(body, request, eng, name)


@router.post(
    "/search",
    response_model=SearchResponse,
    tags=["search"],
    description=SEARCH_DOC + " The default collection.",
    dependencies=[READ],
)
async def search(body: SearchRequest, request: Request, eng: Annotated[Engine, Depends(engine)]) -> SearchResponse:
    return await run_search(body, request, eng, None)


@router.post("/similarity", response_model=SimilarityResponse, tags=["similarity"], dependencies=[READ_ANY])
async def similarity(
    body: SimilarityRequest,
    eng: Annotated[Engine, Depends(engine)],
) -> SimilarityResponse:
    """Similarity scores for `pairs`, or for `source` against each of `targets`, in input order.

    `model: "bi"` (default) scores the cosine of the default bi-encoder's embeddings; `model: "cross"` reads
    both texts together with the default cross-encoder (its raw score: higher is more similar); any other
    value names a model of the registry (`GET /models`)."""
    s = eng.settings
    started = time.perf_counter()
    if body.pairs is not None:
        if len(body.pairs) > s.max_pairs:
            reject(
                ("body", "pairs"),
                f"{len(body.pairs)} pairs; the limit is {s.max_pairs} (SIMSEARCH_MAX_PAIRS)",
                kind="too_long",
            )
        check_lengths(s, [(("body", "pairs", i, j), t) for i, p in enumerate(body.pairs) for j, t in enumerate(p)])
        pairs = [(a, b) for a, b in body.pairs]
    else:
        assert body.source is not None and body.targets is not None  # the schema guarantees the other form
        if len(body.targets) > s.max_targets:
            reject(
                ("body", "targets"),
                f"{len(body.targets)} targets; the limit is {s.max_targets} (SIMSEARCH_MAX_TARGETS)",
                kind="too_long",
            )
        check_lengths(
            s, [(("body", "source"), body.source)] + [(("body", "targets", i), t) for i, t in enumerate(body.targets)]
        )
        pairs = [(body.source, t) for t in body.targets]
    try:
        eng.similarity_model(body.model)
    except UnknownModelError as exc:
        message = str(exc)
        if body.model == "cross":
            message = (
                "no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL to a trained one "
                "(python -m training.train_cross) and restart"
            )
        reject(("body", "model"), message, kind="unavailable")
    scores = await eng.similarity(pairs, body.model)
    truncated = await asyncio.to_thread(eng.truncated_pairs, pairs, body.model)  # after admission
    return SimilarityResponse(
        scores=[float(x) for x in scores],
        model=body.model,
        took_ms=round(1000 * (time.perf_counter() - started), 3),
        truncated=truncated,
    )
