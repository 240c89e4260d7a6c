"""One error shape for every 4xx/5xx: ``{"detail": ..., "message": "<field>: <problem>"}``."""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from simsearch.batching import QueueFullError, RequestTimeoutError


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def summary(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{field_name(e.get('loc', ()))}: {str(e.get('msg', 'invalid')).removeprefix('Value error, ')}" for e in errors
    )


def reject(loc: tuple[str | int, ...], message: str, value: Any = None, kind: str = "value_error") -> NoReturn:
    """Fail the request with HTTP 422, in the same shape as a schema error, for limits set in settings."""
    raise RequestValidationError([{"type": kind, "loc": loc, "msg": message, "input": value}])


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        for e in errors:
            if "input" in e and len(repr(e["input"])) > 200:  # do not echo thousands of pairs back
                e["input"] = repr(e["input"])[:200] + "..."
            if "ctx" in e:  # may hold the exception object itself
                e["ctx"] = {k: str(v) for k, v in e["ctx"].items()}
        return JSONResponse(
            status_code=422,
            content={"detail": jsonable_encoder(errors), "message": summary(errors)},
        )

    @app.exception_handler(QueueFullError)
    async def _busy(_: Request, exc: QueueFullError) -> JSONResponse:
        return JSONResponse(
            status_code=429,
            content={"detail": str(exc), "message": str(exc)},
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(RequestTimeoutError)
    async def _timeout(_: Request, exc: RequestTimeoutError) -> JSONResponse:
        message = f"timed out: {exc}"
        return JSONResponse(
            status_code=503, content={"detail": message, "message": message}, headers={"Retry-After": "1"}
        )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": exc.detail, "message": str(exc.detail)},
            headers=getattr(exc, "headers", None),
        )
