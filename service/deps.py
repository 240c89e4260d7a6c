"""What routes share: the loaded engine, the collection a path names, and the checks of limits that are
settings (a class-level schema cannot see them; they fail like schema errors, HTTP 422 naming the field)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi import HTTPException, Request

from service.errors import reject
from simsearch.api.spec import COLLECTION_NAME
from simsearch.collection.manager import CollectionNotFoundError
from simsearch.serving.collection import CollectionEngine
from simsearch.serving.engine import Engine
from simsearch.settings import Settings


async def engine(request: Request) -> Engine:
    """The loaded engine, or 503. ``async``: a plain function dependency would cost every request a hop
    through the thread pool."""
    state: Engine | None = getattr(request.app.state, "engine", None)
    if state is None:
        raise HTTPException(503, "not ready: the models and collections are not loaded", headers={"Retry-After": "5"})
    return state


def collection_of(eng: Engine, name: str | None) -> CollectionEngine:
    """The collection a path names (``None``: the default one), or 404; a name no collection can have (one
    that would leave the index folder, such as ``..`` or ``C:``) is a 422."""
    if name is not None and name not in eng.collections and not re.fullmatch(COLLECTION_NAME, name):
        reject(("path", "name"), "a collection name is 1-64 ASCII letters, digits, '-' or '_'", name)
    try:
        return eng.get(name)
    except CollectionNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None


def check_lengths(settings: Settings, texts: Sequence[tuple[tuple[str | int, ...], str]]) -> None:
    limit = settings.max_text_chars
    for loc, text in texts:
        if len(text) > limit:
            reject(
                loc,
                f"text is {len(text)} characters; the limit is {limit} (SIMSEARCH_MAX_TEXT_CHARS)",
                kind="string_too_long",
            )
