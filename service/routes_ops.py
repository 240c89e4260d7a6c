"""Operations: liveness, readiness, metrics, the default collection's index info, reloads. ``/ready`` and
``/metrics`` read the counts the engine keeps, so no store is ever asked on the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.access import ADMIN_ALL, READ, READ_ALL
from service.deps import collection_of, engine
from service.routes_collections import live, states
from simsearch.api.schemas import HealthResponse, IndexInfoResponse, ReadyResponse, ReloadResponse
from simsearch.serving.engine import Engine

router = APIRouter()


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
    """Readiness: 200 once the models and collections are loaded. Open to anyone: names, never paths."""
    eng: Engine | None = getattr(request.app.state, "engine", None)
    if eng is None:
        reason = getattr(request.app.state, "not_ready_reason", "the models and collections are not loaded")
        return JSONResponse(ReadyResponse(ready=False, reason=reason).model_dump(), status_code=503)
    access = request.app.state.access  # open to anyone: the list only when anyone may read
    body = ReadyResponse(
        ready=True, collections=states(eng) if access.read_open else [], collections_loaded=len(eng.collections)
    )
    default = eng.collections.get(eng.settings.index_name or "")
    if default is not None:
        rt = default.runtime
        body = body.model_copy(
            update={
                "index": rt.name,
                "build_id": rt.build_id,
                "documents": default.counts.documents,
                "build_documents": default.counts.base,
                "model": rt.bi.display,
                "cross_model": rt.cross_model.display if rt.cross_model is not None else None,
            }
        )
    return JSONResponse(body.model_dump())


@router.get("/metrics", tags=["operations"], response_class=Response, dependencies=[READ_ALL])
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests by endpoint and status, latency, batch sizes, queue depths, and per
    collection its documents, searches, writes and search latency."""
    m = request.app.state.metrics
    eng: Engine | None = getattr(request.app.state, "engine", None)
    if eng is not None:
        for name, col in eng.collections.items():
            m.documents.labels(name).set(col.counts.documents)
            m.build_documents.labels(name).set(col.counts.base)
            m.uncompacted.labels(name).set(col.counts.uncompacted)
        default = eng.collections.get(eng.settings.index_name or "")
        if default is not None:
            m.index_documents.set(default.counts.documents)
        for model, depth in eng.pool.depths().items():
            m.queue_depth.labels(model).set(depth)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/indexes", response_model=IndexInfoResponse, tags=["operations"], dependencies=[READ])
async def indexes(eng: Annotated[Engine, Depends(engine)]) -> IndexInfoResponse:
    """The default collection: what its build recorded (model, dimension, index type, count, CUR) and its
    live counts (`GET /collections/{name}` has the same for any collection)."""
    col = collection_of(eng, None)
    manifest = col.runtime.collection.describe()
    folder = str(manifest.pop("folder", col.name))
    return IndexInfoResponse(name=col.name, folder=folder, manifest=manifest, live=live(col))


@router.post(
    "/admin/reload",
    response_model=ReloadResponse,
    tags=["operations"],
    responses={
        403: {"description": "Wrong or missing admin key."},
        409: {"description": "The new build is broken; the current one keeps serving."},
    },
    dependencies=[ADMIN_ALL],
)
async def reload(eng: Annotated[Engine, Depends(engine)]) -> ReloadResponse:
    """Swap every collection to its newest build (what `simsearch-build-index` or `fit_cur` published) and
    open collections that appeared in the store. Requests in flight finish on the old builds; a broken
    build is refused and the current one keeps serving."""
    col = eng.collections.get(eng.settings.index_name or "")
    before = {name: c.runtime.build_id for name, c in eng.collections.items()}
    _, refused = await eng.reload_all()
    if refused:
        shown = "; ".join(f"{name}: still serving build {before.get(name)}: {why}" for name, why in refused.items())
        raise HTTPException(409, f"new build refused ({shown})")
    col = eng.collections.get(eng.settings.index_name or "")
    if col is None:
        return ReloadResponse(index="", previous_build_id="", build_id="", documents=0)
    return ReloadResponse(
        index=col.name,
        previous_build_id=before.get(col.name, ""),
        build_id=col.runtime.build_id,
        documents=col.counts.documents,
    )
