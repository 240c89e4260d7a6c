"""The search page people use (``GET /`` and ``/static/...``), the modes it may offer (``GET /modes``), and the
API docs served from local files (``install_docs``): nothing the browser loads comes from another origin.

The page is plain HTML, CSS and JavaScript shipped as package data (``service/static/``): no build step, no
CDN. It inserts every text from the index as text, never as HTML, and a strict ``Content-Security-Policy``
(scripts, styles and requests from this origin only, no inline script) holds it to that.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Scope

from service.access import READ
from service.deps import collection_of, engine
from simsearch.search import MODES, Mode
from simsearch.serving.engine import Engine

STATIC_DIR = Path(__file__).parent / "static"
DOCS_ASSETS = "/docs/swagger-ui"  # not under /static: that prefix is the page's own mount

# 'self' only; data: images for the icons the CSS draws; no framing, no <base>, no plugins
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class Assets(StaticFiles):
    """Static files with the page's headers: ``/static/index.html`` opened directly is held to the same policy."""

    def __init__(self, directory: Path, policy: str = PAGE_CSP) -> None:
        super().__init__(directory=directory)
        self.extra_headers = {"Content-Security-Policy": policy, **SECURITY_HEADERS}

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(self.extra_headers)
        return response


router = APIRouter()
router.mount("/static", Assets(STATIC_DIR), name="static")


class ModeAvailability(BaseModel):
    mode: Mode
    available: bool
    reason: str | None = Field(None, description="Why the mode cannot run here, and how to enable it.")


class ModesResponse(BaseModel):
    modes: list[ModeAvailability]


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The search page."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache", **SECURITY_HEADERS},
    )


async def _modes(eng: Engine, name: str | None) -> ModesResponse:
    col = collection_of(eng, name)

    def probe() -> list[ModeAvailability]:
        reasons = [(m, col.unavailable(m)) for m in MODES]  # holds the runtime open while probing
        return [ModeAvailability(mode=m, available=r is None, reason=r) for m, r in reasons]

    return ModesResponse(modes=await asyncio.to_thread(probe))  # probing may read the index


@router.get("/modes", response_model=ModesResponse, tags=["search"], dependencies=[READ])
async def modes(eng: Annotated[Engine, Depends(engine)]) -> ModesResponse:
    """Which search modes the default collection and its models can serve; for the others, why not."""
    return await _modes(eng, None)


@router.get("/collections/{name}/modes", response_model=ModesResponse, tags=["search"], dependencies=[READ])
async def collection_modes(name: str, eng: Annotated[Engine, Depends(engine)]) -> ModesResponse:
    """Which search modes this collection and its models can serve; for the others, why not."""
    return await _modes(eng, name)


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI) with its script and style from the ``swagger_ui_bundle`` package, as in
    FastAPI's "Custom Docs UI Static Assets (Self-Hosting)"; create the app with ``docs_url=None`` and
    ``redoc_url=None`` so that FastAPI's CDN-loading pages are not registered as well."""
    from swagger_ui_bundle import swagger_ui_path  # the distribution swagger-ui-bundle-v2 (Swagger UI 5)

    swagger = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - API docs",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        oauth2_redirect_url=None,  # no OAuth2 flow here: the API takes a Bearer key
        swagger_ui_parameters={"validatorUrl": None},  # else Swagger UI sends the spec to validator.swagger.io
    )
    html = bytes(swagger.body).decode()
    policy = _docs_csp(html)
    headers = {"Content-Security-Policy": policy, **SECURITY_HEADERS}
    app.mount(DOCS_ASSETS, Assets(Path(str(swagger_ui_path)), policy), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)


def _docs_csp(html: str) -> str:
    """The page's policy, with the one inline script of FastAPI's Swagger UI page allowed by its hash, and
    inline styles (Swagger UI sets them)."""
    inline = [s for s in re.findall(r"<script>(.*?)</script>", html, flags=re.S) if s.strip()]
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline)
    return PAGE_CSP.replace("script-src 'self'", f"script-src 'self' {hashes}").replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    )
