"""The application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.errors import install_error_handlers
from service.routes import router
from simsearch import __version__
from simsearch.runtime import Runtime, load_runtime
from simsearch.settings import Settings

log = logging.getLogger("simsearch.service")


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. The lifespan loads the model and index (or takes an already loaded ``runtime``)
    onto ``app.state.runtime``; a :class:`~simsearch.runtime.StartupError` stops start-up."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.not_ready_reason = "loading the model and index"
        loaded = runtime if runtime is not None else await asyncio.to_thread(load_runtime, settings)
        app.state.runtime = loaded
        try:
            yield
        finally:
            app.state.runtime = None
            app.state.not_ready_reason = "shutting down"
            loaded.close()

    app = FastAPI(
        title="simsearch",
        version=__version__,
        summary="Semantic search and sentence similarity over a FAISS index.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runtime = None
    install_error_handlers(app)
    app.include_router(router)
    return app
