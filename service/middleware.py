"""The outermost layer of every request, as one pure ASGI middleware:

- a request id (the client's ``X-Request-ID`` when it is sane, else a new one), echoed in the response;
- the body read whole before the app sees it, with a size limit (413) and a time limit (408), so a slow
  or oversized upload cannot hold the server; the app then reads it from memory;
- one JSON access-log line and the request metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from service.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # used with fullmatch: "$" would let a trailing "\n" in
ALWAYS_ANSWERED = {"/health", "/ready"}  # liveness must not depend on load
CLIENT_CLOSED = 499  # nginx's code for "the client went away before the answer" (never sent, only counted)
log = logging.getLogger("simsearch.access")


async def _reply(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": message, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContext:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        body_timeout_s: float,
        max_in_flight: int = 512,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.body_timeout = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        busy = self.in_flight >= self.max_in_flight and scope["path"] not in ALWAYS_ANSWERED
        self.in_flight += 1
        try:
            if busy:
                await _reply(send_with_id, 503, "too many requests in flight; retry shortly", [(b"retry-after", b"1")])
                return
            body = await self._read_body(headers, receive, send_with_id)
            if body is None:
                if not status["started"]:
                    status["code"] = CLIENT_CLOSED  # gone before its body arrived: nothing failed here
                return
            await self._run_until_disconnect(scope, body, receive, send_with_id)
            if not status["started"]:
                status["code"] = CLIENT_CLOSED
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id, "path": scope["path"]})
            if not status["started"]:  # still answer in the one error shape, with the request id
                await _reply(send_with_id, 500, f"internal error (request id {request_id})")
        finally:
            self.in_flight -= 1
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.latency.labels(endpoint).observe(elapsed)
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status["code"],
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status["code"],
                    "ms": round(1000 * elapsed, 2),
                },
            )

    async def _run_until_disconnect(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        """Run the app; if the client disconnects first, cancel it, so that its queued model work is
        dropped (simsearch.serving.batching) instead of computed for nobody. The server's ``receive`` is
        read by one watcher only; the app gets the body, then the disconnect when it comes."""
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        app = asyncio.ensure_future(self.app(scope, replay, send))
        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait({app, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not app.done():  # the client left first
                app.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await app
                return
            app.result()  # re-raise what the app raised
        finally:
            watcher.cancel()
            if not app.done():
                app.cancel()

    async def _read_body(self, headers: dict[str, str], receive: Receive, send: Send) -> bytes | None:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _reply(
                send, 413, f"request body of {declared} bytes; the limit is {self.max_body} (SIMSEARCH_MAX_BODY_BYTES)"
            )
            return None
        chunks: list[bytes] = []
        size = 0
        deadline = time.perf_counter() + self.body_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                await _reply(send, 408, f"the request body did not arrive within {self.body_timeout:g} s")
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _reply(send, 413, f"request body over {self.max_body} bytes (SIMSEARCH_MAX_BODY_BYTES)")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
