"""Routes: validate, make one call into the core, return a typed response.

Encoding and index search block, so every route that does them is a plain ``def``: FastAPI runs it in
its thread pool and the event loop stays free.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from service.errors import reject
from service.schemas import (
    HealthResponse,
    ReadyResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SimilarityRequest,
    SimilarityResponse,
)
from simsearch.runtime import Runtime
from simsearch.search import ModeUnavailableError
from simsearch.similarity import pair_scores

router = APIRouter()


def runtime(request: Request) -> Runtime:
    state: Runtime | None = getattr(request.app.state, "runtime", None)
    if state is None:
        raise HTTPException(503, "not ready: the model and index are not loaded", headers={"Retry-After": "5"})
    return state


def _check_lengths(rt: Runtime, texts: Sequence[tuple[tuple[str | int, ...], str]]) -> None:
    limit = rt.settings.max_text_chars
    for loc, text in texts:
        if len(text) > limit:
            reject(
                loc,
                f"text is {len(text)} characters; the limit is {limit} (SIMSEARCH_MAX_TEXT_CHARS)",
                kind="string_too_long",
            )


@router.get("/health", response_model=HealthResponse, tags=["operations"])
async def health() -> HealthResponse:
    """Liveness: the process answers."""
    return HealthResponse()


@router.get(
    "/ready",
    response_model=ReadyResponse,
    tags=["operations"],
    responses={503: {"model": ReadyResponse, "description": "Not ready, with the reason."}},
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 only when the model and the index are loaded."""
    rt: Runtime | None = getattr(request.app.state, "runtime", None)
    if rt is None:
        reason = getattr(request.app.state, "not_ready_reason", "the model and index are not loaded")
        return JSONResponse(ReadyResponse(ready=False, reason=reason).model_dump(), status_code=503)
    body = ReadyResponse(
        ready=True,
        index=rt.index.name,
        build_id=rt.index.manifest.build_id,
        documents=rt.index.manifest.count,
        model=rt.encoder.path,
        cross_model=rt.cross.path if rt.cross else None,
    )
    return JSONResponse(body.model_dump())


@router.post("/search", response_model=SearchResponse, tags=["search"])
def search(body: SearchRequest, rt: Annotated[Runtime, Depends(runtime)]) -> SearchResponse:
    """The `k` best documents for the query: by bi-encoder cosine (`dense`), re-ranked by the
    cross-encoder (`rerank`), or by the CUR approximation of the cross-encoder (`cur`)."""
    _check_lengths(rt, [(("body", "query"), body.query)])
    limit = rt.settings.max_rerank
    if body.k_r is not None and body.k_r > limit:
        reject(("body", "k_r"), f"{body.k_r} candidates; the limit is {limit} (SIMSEARCH_MAX_RERANK)", kind="too_large")
    k_r = body.k_r or min(100, limit)
    started = time.perf_counter()
    truncated = rt.encoder.truncated([body.query], prefix=rt.searcher.query_prefix)[0]
    try:
        hits, calls = rt.searcher.search_mode(body.query, body.k, body.mode, k_r)
    except ModeUnavailableError as exc:
        reject(("body", "mode"), str(exc), kind="unavailable")
    return SearchResponse(
        hits=[SearchHit(id=h.id, score=h.score, title=h.title, text=h.text, metadata=h.metadata) for h in hits],
        took_ms=round(1000 * (time.perf_counter() - started), 3),
        index=rt.index.name,
        truncated=truncated,
        mode=body.mode,
        cross_encoder_calls=calls,
    )


@router.post("/similarity", response_model=SimilarityResponse, tags=["similarity"])
def similarity(body: SimilarityRequest, rt: Annotated[Runtime, Depends(runtime)]) -> SimilarityResponse:
    """Similarity scores for `pairs`, or for `source` against each of `targets`, in input order.

    `model: "bi"` (default) scores the cosine of bi-encoder embeddings; `model: "cross"` reads both texts
    together with the configured cross-encoder (its raw score: higher is more similar)."""
    s = rt.settings
    started = time.perf_counter()
    if body.pairs is not None:
        if len(body.pairs) > s.max_pairs:
            reject(
                ("body", "pairs"),
                f"{len(body.pairs)} pairs; the limit is {s.max_pairs} (SIMSEARCH_MAX_PAIRS)",
                kind="too_long",
            )
        _check_lengths(rt, [(("body", "pairs", i, j), t) for i, p in enumerate(body.pairs) for j, t in enumerate(p)])
        pairs = [(a, b) for a, b in body.pairs]
    else:
        assert body.source is not None and body.targets is not None  # the schema guarantees the other form
        if len(body.targets) > s.max_targets:
            reject(
                ("body", "targets"),
                f"{len(body.targets)} targets; the limit is {s.max_targets} (SIMSEARCH_MAX_TARGETS)",
                kind="too_long",
            )
        _check_lengths(
            rt, [(("body", "source"), body.source)] + [(("body", "targets", i), t) for i, t in enumerate(body.targets)]
        )
        pairs = [(body.source, t) for t in body.targets]
    if body.model == "cross":
        if rt.cross is None:
            reject(
                ("body", "model"),
                "no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL to a trained one "
                "(python -m training.train_cross) and restart",
                kind="unavailable",
            )
        assert rt.cross is not None
        truncated = [i for i, cut in enumerate(rt.cross.truncated(pairs)) if cut]
        scores = rt.cross.score(pairs)
    else:
        cut = rt.encoder.truncated([t for p in pairs for t in p])
        truncated = [i for i in range(len(pairs)) if cut[2 * i] or cut[2 * i + 1]]
        scores = pair_scores(rt.encoder, pairs)  # each distinct text is encoded once (the source only once)
    return SimilarityResponse(
        scores=[float(x) for x in scores],
        model=body.model,
        took_ms=round(1000 * (time.perf_counter() - started), 3),
        truncated=truncated,
    )
