"""One error shape for every 4xx/5xx: ``{"detail": ..., "message": "<field>: <problem>"}``."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from simsearch.serving.batching import QueueFullError, RequestTimeoutError


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc) or "body"


MAX_ERRORS = 20  # reported per response: a body of a million bad items gets 20 and a count, not a million


def summary(errors: list[dict[str, Any]], more: int = 0) -> str:
    text = "; ".join(
        f"{field_name(e.get('loc', ()))}: {str(e.get('msg', 'invalid')).removeprefix('Value error, ')}" for e in errors
    )
    return text + (f"; and {more} more errors" if more else "")


def reject(loc: tuple[str | int, ...], message: str, value: Any = None, kind: str = "value_error") -> NoReturn:
    """Fail the request with HTTP 422, in the same shape as a schema error, for limits set in settings."""
    raise RequestValidationError([{"type": kind, "loc": loc, "msg": message, "input": value}])


def _echo(value: Any) -> Any:
    """The offending input as it can be echoed: JSON-safe (no NaN or infinity, no lone surrogates) and short
    (thousands of pairs are not sent back)."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return json.dumps(value, ensure_ascii=True, default=repr)[:200]
    return value if len(text) <= 200 else text[:200] + "..."


BODY_NOT_JSON = "There was an error parsing the body"  # FastAPI's words for undecodable or too deeply nested JSON


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        found = exc.errors()
        errors, more = list(found[:MAX_ERRORS]), max(0, len(found) - MAX_ERRORS)
        for e in errors:
            if "input" in e:
                e["input"] = _echo(e["input"])
            if "ctx" in e:  # may hold the exception object itself
                e["ctx"] = {k: str(v) for k, v in e["ctx"].items()}
        return JSONResponse(
            status_code=422,
            content={"detail": jsonable_encoder(errors), "message": summary(errors, more), "more_errors": more},
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
        if exc.status_code == 400 and exc.detail == BODY_NOT_JSON:
            message = "body: not valid JSON (it must be UTF-8 text, nested at most a few hundred levels deep)"
            return JSONResponse(
                status_code=422,
                content={"detail": [{"type": "json_invalid", "loc": ["body"], "msg": message}], "message": message},
            )
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": exc.detail, "message": str(exc.detail)},
            headers=getattr(exc, "headers", None),
        )
