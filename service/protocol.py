"""The HTTP protocol the server runs: uvicorn's httptools protocol with a deadline on request headers.

uvicorn arms no timer until a connection's first response, so sockets that connect and send nothing
stay open for ever; and its ``limit_concurrency`` counts those sockets, so a few hundred of them make
every request, ``/health`` included, a 503. Here a connection must complete its request headers within
``SIMSEARCH_HEADER_TIMEOUT_S`` (for every request on it) or it is closed, and the limit is on requests
in flight (service.middleware), which an idle socket never is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: float = 5.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a keep-alive connection's next request gets the same deadline

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_with(header_timeout: float) -> Any:
    """The protocol class, with this deadline, for ``uvicorn.run(..., http=...)``."""
    return type("HttpProtocol", (GuardedHttpToolsProtocol,), {"header_timeout": header_timeout})
