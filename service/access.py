"""Who may call what: one scheme (``Authorization: Bearer <key>``, one header), three scopes, and keys that
may be limited to collections. Each route declares what it needs with a dependency, ``Depends(allow(...))``,
as in the FastAPI template; a route without one is open, and tests/test_access.py lists the open ones, so a
new route cannot be open by accident.

- **read** (search, similarity, documents by id, collections, metrics, index info): open while no read key
  is configured (``SIMSEARCH_API_KEYS``, or a scoped key with ``read``); otherwise any key that reads.
- **write** (``PUT``/``DELETE`` documents, creating a collection): off unless ``SIMSEARCH_WRITE_KEYS`` or a
  scoped key with ``write`` exist (then those keys, or an admin key) or ``SIMSEARCH_ANONYMOUS_WRITES`` is true.
- **admin** (deleting a collection, compaction, reload): off unless ``SIMSEARCH_ADMIN_KEY`` or a scoped key
  with ``admin`` exist; then those keys only.

A scoped key (``SIMSEARCH_SCOPED_KEYS``) holds its scopes on its collections only: another collection is a
403, and ``GET /collections`` does not show it. Keys are compared in constant time, every key every time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Depends, HTTPException, Request

from simsearch.settings import Settings

Scope = Literal["read", "write", "admin"]


@dataclass(frozen=True)
class Grant:
    key: bytes
    scopes: frozenset[str]
    collections: frozenset[str] | None  # None: every collection


@dataclass(frozen=True)
class Principal:
    """What the caller's key allows: scopes, each on every collection or on some."""

    grants: tuple[Grant, ...]
    anonymous: bool

    def may(self, scope: Scope, collection: str | None = None, *, anywhere: bool = False) -> bool:
        """Whether some grant of the key holds ``scope`` (write: also admin) on ``collection`` (``None``: on
        every collection, as reloading every collection needs; ``anywhere``: on at least one, as the routes
        that read no collection's data need, such as ``/similarity``)."""
        wanted = {"write", "admin"} if scope == "write" else {scope}
        for grant in self.grants:
            if not grant.scopes & wanted:
                continue
            if anywhere or grant.collections is None or (collection is not None and collection in grant.collections):
                return True
        return False

    def sees(self, collection: str) -> bool:
        return any(g.collections is None or collection in g.collections for g in self.grants)


class Access:
    """The configured keys and the rules of the module docstring."""

    def __init__(self, settings: Settings) -> None:
        grants = [Grant(k.get_secret_value().encode(), frozenset({"read"}), None) for k in settings.api_keys]
        grants += [
            Grant(k.get_secret_value().encode(), frozenset({"read", "write"}), None) for k in settings.write_keys
        ]
        if settings.admin_key is not None:
            grants.append(Grant(settings.admin_key.get_secret_value().encode(), frozenset({"read", "admin"}), None))
        for scoped in settings.scoped_keys:
            limited = frozenset(scoped.collections) if scoped.collections is not None else None
            grants.append(Grant(scoped.key.get_secret_value().encode(), frozenset(scoped.scopes) | {"read"}, limited))
        self.grants = grants
        self.read_open = not settings.api_keys and not settings.scoped_keys
        self.writes_on = any("write" in g.scopes for g in grants)
        self.admin_on = any("admin" in g.scopes for g in grants)
        self.anonymous_writes = settings.anonymous_writes

    def principal(self, authorizations: list[str]) -> Principal:
        if len(authorizations) > 1:
            raise HTTPException(400, "send one Authorization header, not several")
        scheme, _, token = (authorizations[0] if authorizations else "").partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        # compare with every key, always: the time taken does not depend on which matched
        matched = [g for g in self.grants if hmac.compare_digest(given, g.key)]
        held = tuple(matched) if given else ()
        return Principal(held, anonymous=not held)

    def check(self, principal: Principal, scope: Scope, collection: str | None, *, anywhere: bool = False) -> None:
        """Raise the HTTP error that refuses ``scope`` on ``collection`` (``None``: every collection;
        ``anywhere``: some collection)."""
        if scope == "read":
            if (self.read_open and principal.anonymous) or principal.may("read", collection, anywhere=anywhere):
                return
            if principal.anonymous:
                raise _unauthorised("missing or invalid API key: send Authorization: Bearer <key>")
            raise HTTPException(403, _not_on(collection, "read"))
        if scope == "write":
            if self.anonymous_writes or principal.may("write", collection):
                return
            if not self.writes_on:
                raise HTTPException(
                    403,
                    "document writes are off: set SIMSEARCH_WRITE_KEYS (or SIMSEARCH_ANONYMOUS_WRITES=true "
                    "on a private network)",
                )
            if principal.anonymous:
                raise _unauthorised("missing or invalid write key: send Authorization: Bearer <write key>")
            if any("write" in g.scopes or "admin" in g.scopes for g in principal.grants):  # other collections'
                raise HTTPException(403, _not_on(collection, "write"))
            raise HTTPException(403, "this key may read but not write: send a key from SIMSEARCH_WRITE_KEYS")
        if not self.admin_on:
            raise HTTPException(403, "admin endpoints are off: set SIMSEARCH_ADMIN_KEY")
        if principal.may("admin", collection):
            return
        if principal.anonymous:
            raise _unauthorised("missing or invalid admin key: send Authorization: Bearer <SIMSEARCH_ADMIN_KEY>")
        if any("admin" in g.scopes for g in principal.grants):
            raise HTTPException(403, _not_on(collection, "admin"))
        raise HTTPException(403, "this key is not an admin key (SIMSEARCH_ADMIN_KEY)")


def _not_on(collection: str | None, scope: str) -> str:
    where = f"collection {collection!r}" if collection else "every collection"
    return f"this key may not {scope} {where}"


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def allow(
    scope: Scope, *, per_collection: bool = True, anywhere: bool = False
) -> Callable[[Request], Awaitable[Principal]]:
    """A route's access dependency: the caller must hold ``scope`` on the collection the path names (the
    default collection for the routes without one), on every collection (``per_collection=False``), or on
    some collection (``anywhere``: routes that read no collection's data)."""

    async def dependency(request: Request) -> Principal:
        access: Access = request.app.state.access
        principal = access.principal(request.headers.getlist("authorization"))
        collection = None
        if per_collection:
            collection = request.path_params.get("name") or request.app.state.settings.index_name
        access.check(principal, scope, collection, anywhere=anywhere)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"allow_{scope}"
    return dependency


async def caller(request: Request) -> Principal:
    """The caller's key, for routes that show only what it may see (``GET /collections``): any reader."""
    access: Access = request.app.state.access
    principal = access.principal(request.headers.getlist("authorization"))
    if principal.anonymous and not access.read_open:
        raise _unauthorised("missing or invalid API key: send Authorization: Bearer <key>")
    request.state.principal = principal
    return principal


# the dependencies routes declare (``@router.get(..., dependencies=[READ])``)
READ = Depends(allow("read"))
WRITE = Depends(allow("write"))
ADMIN = Depends(allow("admin"))
READ_ANY = Depends(allow("read", per_collection=False, anywhere=True))  # no collection's data: similarity, models
READ_ALL = Depends(allow("read", per_collection=False))  # every collection's figures: metrics
ADMIN_ALL = Depends(allow("admin", per_collection=False))  # every collection (reload)
