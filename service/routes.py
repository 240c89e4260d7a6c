"""Routes: validate, make one call into the engine, return a typed response.

Model calls go through the engine's micro-batchers, which run them on their own thread; the routes are
``async`` only to await them, and every other blocking step (tokenising for the truncation report,
FAISS, SQLite) runs in the thread pool, or for a lone search on the model's thread right after its
model call, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.errors import reject
from service.schemas import (
    CompactResponse,
    DeleteRequest,
    DocumentOut,
    HealthResponse,
    IndexInfoResponse,
    ReadyResponse,
    ReloadResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SimilarityRequest,
    SimilarityResponse,
    UpsertRequest,
    WriteResponse,
)
from simsearch.collection.compact import CompactionError
from simsearch.collection.delta import WriteResult
from simsearch.collection.embedded import EmbeddedCollection, ReadOnlyError
from simsearch.collection.filters import FilterError, parse_filter
from simsearch.data.corpus import Document
from simsearch.index import IndexLoadError
from simsearch.models.files import display_name
from simsearch.search import Fusion, ModeUnavailableError, SearchParams
from simsearch.serving.engine import Engine
from simsearch.serving.runtime import Runtime

router = APIRouter()


async def engine(request: Request) -> Engine:
    """The loaded engine, or 503. ``async``: a plain function dependency would cost every request a hop
    through the thread pool."""
    state: Engine | None = getattr(request.app.state, "engine", None)
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
    eng: Engine | None = getattr(request.app.state, "engine", None)
    if eng is None:
        reason = getattr(request.app.state, "not_ready_reason", "the model and index are not loaded")
        return JSONResponse(ReadyResponse(ready=False, reason=reason).model_dump(), status_code=503)
    rt = eng.runtime
    body = ReadyResponse(
        ready=True,
        index=rt.name,
        build_id=rt.build_id,
        documents=rt.view.count,  # the build and the writes since
        model=display_name(rt.encoder.path),  # names, not paths: /ready is open to anyone
        cross_model=display_name(rt.cross.path) if rt.cross else None,
    )
    return JSONResponse(body.model_dump())


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests by endpoint and status, latency, batch sizes, queue depth, index size."""
    m = request.app.state.metrics
    eng: Engine | None = getattr(request.app.state, "engine", None)
    if eng is not None:
        m.index_documents.set(eng.runtime.view.count)
        m.queue_depth.labels("bi-encoder").set(eng.bi.depth)
        if eng.cross is not None:
            m.queue_depth.labels("cross-encoder").set(eng.cross.depth)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/indexes", response_model=IndexInfoResponse, tags=["operations"])
async def indexes(eng: Annotated[Engine, Depends(engine)]) -> IndexInfoResponse:
    """The loaded index: its manifest (model, dimension, index type, count, build, CUR) and its folder."""
    rt = eng.runtime
    folder = rt.index.path.name if isinstance(rt.collection, EmbeddedCollection) else rt.collection.backend
    return IndexInfoResponse(name=rt.name, folder=folder, manifest=rt.collection.describe())


@router.post(
    "/admin/reload",
    response_model=ReloadResponse,
    tags=["operations"],
    responses={
        403: {"description": "Wrong or missing admin key."},
        409: {"description": "The new build is broken; the current one keeps serving."},
    },
)
async def reload(request: Request, eng: Annotated[Engine, Depends(engine)]) -> ReloadResponse:
    """Swap in the newest build of the configured index (what `simsearch-build-index` or `fit_cur`
    published). Requests in flight finish on the old build; a broken build is refused."""
    before = eng.runtime.build_id
    try:
        rt = await eng.reload()
    except (IndexLoadError, OSError, ValueError) as exc:  # a broken or vanished build: keep serving this one
        request.app.state.metrics.reloads.labels("refused").inc()
        raise HTTPException(409, f"new index refused, still serving build {before}: {exc}") from None
    request.app.state.metrics.reloads.labels("ok").inc()
    return ReloadResponse(
        index=rt.name,
        previous_build_id=before,
        build_id=rt.build_id,
        documents=rt.view.count,
    )


@router.post("/search", response_model=SearchResponse, tags=["search"])
async def search(body: SearchRequest, request: Request, eng: Annotated[Engine, Depends(engine)]) -> SearchResponse:
    """The `k` best documents for the query: by bi-encoder cosine (`dense`), re-ranked by the
    cross-encoder (`rerank`), or by the CUR approximation of the cross-encoder (`cur`)."""
    rt = eng.runtime
    _check_lengths(rt, [(("body", "query"), body.query)])
    limit = rt.settings.max_rerank
    if body.k_r is not None and body.k_r > limit:
        reject(("body", "k_r"), f"{body.k_r} candidates; the limit is {limit} (SIMSEARCH_MAX_RERANK)", kind="too_large")
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
        outcome = await eng.search(body.query, params)
    except ModeUnavailableError as exc:
        field = "filter" if flt is not None and "filter" in str(exc) else "mode"
        reject(("body", field), str(exc), kind="unavailable")
    result = outcome.result
    request.app.state.metrics.cross_calls.inc(result.cross_encoder_calls)
    # reported after the search was admitted (a request that gets 429 costs no tokenising); a query short
    # in bytes cannot be cut, and a long one is tokenised off the event loop
    text = rt.pipeline.query_prefix + body.query
    truncated = (
        len(text.encode()) + 4 > rt.encoder.max_seq_length
        and (await asyncio.to_thread(rt.encoder.truncated, [text]))[0]
    )
    return SearchResponse(
        hits=[SearchHit(id=h.id, score=h.score, title=h.title, text=h.text, metadata=h.metadata) for h in result.hits],
        took_ms=round(1000 * (time.perf_counter() - started), 3),
        index=outcome.runtime.name,
        truncated=truncated,
        mode=body.mode,
        cross_encoder_calls=result.cross_encoder_calls,
    )


@router.post("/similarity", response_model=SimilarityResponse, tags=["similarity"])
async def similarity(body: SimilarityRequest, eng: Annotated[Engine, Depends(engine)]) -> SimilarityResponse:
    """Similarity scores for `pairs`, or for `source` against each of `targets`, in input order.

    `model: "bi"` (default) scores the cosine of bi-encoder embeddings; `model: "cross"` reads both texts
    together with the configured cross-encoder (its raw score: higher is more similar)."""
    rt = eng.runtime
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
    if body.model == "cross" and rt.cross is None:
        reject(
            ("body", "model"),
            "no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL to a trained one "
            "(python -m training.train_cross) and restart",
            kind="unavailable",
        )
    scores = await eng.similarity(pairs, body.model)
    truncated = await asyncio.to_thread(_truncated, rt, pairs, body.model)  # after admission: 429s cost nothing
    return SimilarityResponse(
        scores=[float(x) for x in scores],
        model=body.model,
        took_ms=round(1000 * (time.perf_counter() - started), 3),
        truncated=truncated,
    )


def _truncated(rt: Runtime, pairs: list[tuple[str, str]], model: str) -> list[int]:
    if model == "cross":
        assert rt.cross is not None
        return [i for i, cut in enumerate(rt.cross.truncated(pairs)) if cut]
    cut: list[Any] = rt.encoder.truncated([t for p in pairs for t in p])
    return [i for i in range(len(pairs)) if cut[2 * i] or cut[2 * i + 1]]


# ---- documents ---------------------------------------------------------------------------------------------


def _write_response(result: WriteResult, started: float) -> WriteResponse:
    return WriteResponse(
        sequence=result.sequence,
        inserted=result.inserted,
        replaced=result.replaced,
        deleted=result.deleted,
        not_found=result.not_found,
        took_ms=round(1000 * (time.perf_counter() - started), 3),
    )


def _check_batch(eng: Engine, field: str, ids: Sequence[str]) -> None:
    limit = eng.runtime.settings.max_write_batch
    if len(ids) > limit:
        reject(("body", field), f"{len(ids)} items; the limit is {limit} (SIMSEARCH_MAX_WRITE_BATCH)", kind="too_long")
    first: dict[str, int] = {}
    for i, doc_id in enumerate(ids):
        if doc_id in first:
            where = ("body", field, i, "id") if field == "documents" else ("body", field, i)
            reject(where, f"duplicate id {doc_id!r} (also item {first[doc_id]}): a batch names each id once")
        first[doc_id] = i


@router.put(
    "/documents",
    response_model=WriteResponse,
    tags=["documents"],
    responses={403: {"description": "Writes are off, or the key may not write."}, 409: {"description": "Read-only."}},
)
async def upsert_documents(body: UpsertRequest, eng: Annotated[Engine, Depends(engine)]) -> WriteResponse:
    """Insert documents, or replace them by id, as one batch: all of them or none (a bad item is a 422
    naming it). Durable and visible to the next search when answered."""
    started = time.perf_counter()
    _check_batch(eng, "documents", [d.id for d in body.documents])
    _check_lengths(eng.runtime, [(("body", "documents", i, "text"), d.text) for i, d in enumerate(body.documents)])
    docs = [Document(id=d.id, text=d.text, title=d.title, metadata=d.metadata or None) for d in body.documents]
    try:
        result = await eng.upsert(docs)
    except ReadOnlyError as exc:
        raise HTTPException(409, str(exc)) from None
    return _write_response(result, started)


@router.delete("/documents", response_model=WriteResponse, tags=["documents"])
async def delete_documents(body: DeleteRequest, eng: Annotated[Engine, Depends(engine)]) -> WriteResponse:
    """Delete documents by id as one batch; ids that are not there are listed in `not_found`."""
    started = time.perf_counter()
    _check_batch(eng, "ids", body.ids)
    try:
        result = await eng.delete(body.ids)
    except ReadOnlyError as exc:
        raise HTTPException(409, str(exc)) from None
    return _write_response(result, started)


@router.get(
    "/documents/{doc_id}",
    response_model=DocumentOut,
    tags=["documents"],
    responses={404: {"description": "No document with this id."}},
)
async def get_document(doc_id: str, eng: Annotated[Engine, Depends(engine)]) -> DocumentOut:
    """One document by id, as the next search would see it."""
    doc = await eng.get(doc_id)
    if doc is None:
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return DocumentOut(id=doc.id, title=doc.title, text=doc.text, metadata=doc.metadata)


@router.post("/admin/compact", response_model=CompactResponse, tags=["operations"])
async def compact_now(eng: Annotated[Engine, Depends(engine)]) -> CompactResponse:
    """Fold the writes since the build into a new build now, and swap to it (no request fails meanwhile)."""
    try:
        done = await eng.compact()
    except (CompactionError, ReadOnlyError) as exc:
        raise HTTPException(409, str(exc)) from None
    return CompactResponse(**done)
