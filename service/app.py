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

from service import page
from service.access import Access
from service.errors import install_error_handlers
from service.metrics import Metrics
from service.middleware import RequestContext
from service.routes import router
from simsearch import __version__
from simsearch.index import IndexLoadError
from simsearch.serving.engine import Engine
from simsearch.serving.runtime import Runtime, load_runtime
from simsearch.settings import Settings

log = logging.getLogger("simsearch.service")


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. The lifespan loads the model and index (or takes an already loaded ``runtime``)
    and puts an :class:`~simsearch.serving.engine.Engine` on ``app.state.engine``; a
    :class:`~simsearch.serving.runtime.StartupError` stops start-up. SIGHUP reloads the index."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.not_ready_reason = "loading the model and index"
        loaded = runtime if runtime is not None else await asyncio.to_thread(load_runtime, settings)
        engine = Engine(loaded)
        engine.bi.on_batch = metrics.batch_observer("bi-encoder")
        if engine.cross is not None:
            engine.cross.on_batch = metrics.batch_observer("cross-encoder")
        app.state.engine = engine
        engine.start()
        hangup = _install_sighup(engine, metrics)
        try:
            yield
        finally:
            if hangup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            app.state.engine = None
            app.state.not_ready_reason = "shutting down"
            await engine.stop()
            engine.runtime.close()

    app = FastAPI(
        title="simsearch",
        version=__version__,
        summary="Semantic search and sentence similarity over a FAISS index.",
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
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(page.router)
    page.install_docs(app)
    app.add_middleware(
        RequestContext,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        max_in_flight=settings.max_in_flight,
        access=Access(
            read_keys=[k.get_secret_value() for k in settings.api_keys],
            write_keys=[k.get_secret_value() for k in settings.write_keys],
            admin_key=settings.admin_key.get_secret_value() if settings.admin_key else None,
            anonymous_writes=settings.anonymous_writes,
        ),
    )
    if settings.cors_origins:  # outermost: browsers' preflight requests carry no API key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["authorization", "content-type", "x-request-id"],
        )
    return app


def _install_sighup(engine: Engine, metrics: Metrics) -> bool:
    """``kill -HUP <pid>`` reloads the index, as ``POST /admin/reload`` does (main thread only)."""

    def on_hangup() -> None:
        async def reload() -> None:
            try:
                await engine.reload()
                metrics.reloads.labels("ok").inc()
            except (IndexLoadError, OSError, ValueError) as exc:
                metrics.reloads.labels("refused").inc()
                log.error("reload refused, the current index keeps serving: %s", exc)
            except Exception:  # never silently: the signal handler's task has no one else to tell
                metrics.reloads.labels("refused").inc()
                log.exception("reload failed, the current index keeps serving")

        asyncio.get_running_loop().create_task(reload())

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
        return True
    return False
