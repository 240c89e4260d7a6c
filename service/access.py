"""Who may call what: one scheme (``Authorization: Bearer <key>``, one header), three scopes.

- **read** (search, similarity, documents by id, metrics, index info, the API docs): open while no
  ``SIMSEARCH_API_KEYS`` are set; otherwise any read, write or admin key.
- **write** (``PUT``/``DELETE /documents``): off unless ``SIMSEARCH_WRITE_KEYS`` are set (then a write or
  the admin key) or ``SIMSEARCH_ANONYMOUS_WRITES`` is true. A read key cannot write.
- **admin** (``/admin/...``): off unless ``SIMSEARCH_ADMIN_KEY`` is set; then that key only.

``/health``, ``/ready``, the search page, its static files and the API docs are open (the page asks for
a key and sends it with each API call). Keys are compared in constant time, every key every time.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

Scope = Literal["open", "read", "write", "admin"]
# the page and the API docs load without a key (they hold no data; the page asks for a key for its calls)
OPEN_PATHS = {"/health", "/ready", "/", "/favicon.ico", "/docs", "/openapi.json"}
OPEN_PREFIXES = ("/static/", "/docs/swagger-ui/")


@dataclass(frozen=True)
class Denied:
    status: int  # 401: no or unknown key; 403: a known key without the scope, or the scope is off
    message: str


class Access:
    def __init__(
        self, read_keys: list[str], write_keys: list[str], admin_key: str | None, anonymous_writes: bool
    ) -> None:
        self.read = [k.encode() for k in read_keys]
        self.write = [k.encode() for k in write_keys]
        self.admin = [admin_key.encode()] if admin_key else []
        self.anonymous_writes = anonymous_writes

    @staticmethod
    def scope(method: str, path: str) -> Scope:
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return "open"
        if path.startswith("/admin/"):
            return "admin"
        if path.startswith("/documents") and method in ("PUT", "DELETE", "POST", "PATCH"):
            return "write"
        return "read"

    def check(self, method: str, path: str, authorizations: list[str]) -> Denied | None:
        """``None`` when the request may go on, else why not."""
        scope = self.scope(method, path)
        if scope == "open":
            return None
        if len(authorizations) > 1:
            return Denied(400, "send one Authorization header, not several")
        held = self._scopes(authorizations[0] if authorizations else "")
        if scope == "read":
            if not self.read or held:
                return None
            return Denied(401, "missing or invalid API key: send Authorization: Bearer <key>")
        if scope == "write":
            if self.anonymous_writes:  # switched on explicitly: anyone may write, with a key or without
                return None
            if not self.write:
                return Denied(
                    403,
                    "document writes are off: set SIMSEARCH_WRITE_KEYS (or SIMSEARCH_ANONYMOUS_WRITES=true "
                    "on a private network)",
                )
            if "write" in held or "admin" in held:
                return None
            if held:
                return Denied(403, "this key may read but not write: send a key from SIMSEARCH_WRITE_KEYS")
            return Denied(401, "missing or invalid write key: send Authorization: Bearer <write key>")
        if not self.admin:
            return Denied(403, "admin endpoints are off: set SIMSEARCH_ADMIN_KEY")
        if "admin" in held:
            return None
        if held:
            return Denied(403, "this key is not the admin key (SIMSEARCH_ADMIN_KEY)")
        return Denied(401, "missing or invalid admin key: send Authorization: Bearer <SIMSEARCH_ADMIN_KEY>")

    def _scopes(self, authorization: str) -> set[str]:
        scheme, _, token = authorization.partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        held = set()
        # compare with every key of every scope, always: the time taken does not depend on which matched
        for name, keys in (("read", self.read), ("write", self.write), ("admin", self.admin)):
            if any([hmac.compare_digest(given, key) for key in keys]) and given:
                held.add(name)
        return held
