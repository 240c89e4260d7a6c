"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import page, routes_collections, routes_documents, routes_ops, routes_search
from service.access import Access
from service.errors import install_error_handlers
from service.metrics import Metrics
from service.middleware import RequestContext
from simsearch import __version__
from simsearch.models.registry import ModelRegistry
from simsearch.serving.engine import Engine
from simsearch.serving.runtime import Runtime, Threads, registry_for, store_for
from simsearch.settings import Settings

log = logging.getLogger("simsearch.service")


def create_app(
    settings: Settings | None = None, *, runtime: Runtime | None = None, registry: ModelRegistry | None = None
) -> FastAPI:
    """Build the app. The lifespan loads the models and opens every collection (the default one from
    ``runtime`` when it was opened already, as ``python -m service`` does before binding its port) and puts
    an :class:`~simsearch.serving.engine.Engine` on ``app.state.engine``; a
    :class:`~simsearch.serving.runtime.StartupError` stops start-up. SIGHUP reloads every collection."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.not_ready_reason = "loading the models and collections"
        threads = Threads.from_settings(settings)
        models = registry or registry_for(settings, threads)
        if runtime is not None:
            for loaded in (runtime.bi, runtime.cross_model):
                if loaded is not None:
                    models.adopt(loaded)
        store = await asyncio.to_thread(store_for, settings)
        engine = Engine(
            settings,
            models,
            store,
            threads,
            observer=metrics.batch_observer,
            on_reload=lambda name, outcome: metrics.reloads.labels(name, outcome).inc(),
        )
        try:
            await engine.open_all(runtime)
        except BaseException:
            await engine.stop()
            raise
        app.state.engine = engine
        engine.start()
        hangup = _install_sighup(engine)
        try:
            yield
        finally:
            if hangup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            app.state.engine = None
            app.state.not_ready_reason = "shutting down"
            await engine.stop()

    app = FastAPI(
        title="simsearch",
        version=__version__,
        summary="Semantic, keyword and hybrid search over collections, and sentence similarity.",
        lifespan=lifespan,
        docs_url=None,  # /docs is served with local assets by service.page (the service works offline)
        redoc_url=None,
        # no telemetry: FastAPI's OpenTelemetry hooks stay off whatever the environment or a global
        # provider says (FASTAPI_OTEL_AUTO_CONFIGURE, an installed SDK); this also skips their per-request checks
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        },
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engine = None
    app.state.access = Access(settings)
    install_error_handlers(app)
    for routes in (routes_ops.router, routes_search.router, routes_documents.router, page.router):
        app.include_router(routes)
    app.include_router(routes_collections.router)  # last: it ends with the catch-all of /collections/...
    page.install_docs(app)
    app.add_middleware(
        RequestContext,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        max_in_flight=settings.max_in_flight,
    )
    if settings.cors_origins:  # outermost: browsers' preflight requests carry no API key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["authorization", "content-type", "x-request-id"],
        )
    return app


def _install_sighup(engine: Engine) -> bool:
    """``kill -HUP <pid>`` reloads every collection, as ``POST /admin/reload`` does (main thread only)."""

    def on_hangup() -> None:
        async def reload() -> None:
            try:
                _, refused = await engine.reload_all()
                for name, why in refused.items():
                    log.error("reload of %s refused, its current build keeps serving: %s", name, why)
            except Exception:  # never silently: the signal handler's task has no one else to tell
                log.exception("reload failed, the current builds keep serving")

        asyncio.get_running_loop().create_task(reload())

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
        return True
    return False
