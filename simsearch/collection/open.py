"""Opening the configured collection, whichever store holds it; bad configuration fails here, in one line.

    store = "embedded"   the published build of ``index_dir/index_name`` plus its write log (the default)
    store = "milvus"     the Milvus collection ``milvus_collection`` (default: the index name) at
                         ``milvus_uri``: a local file for milvus-lite, or a server's address

Each problem a start-up can meet becomes one :class:`CollectionOpenError` whose message names what is
wrong, where, and the setting that fixes it: a Milvus address nobody answers at, a milvus-lite file whose
folder is missing, a missing collection, a collection of another model (its hash or dimension). Settings
are read with defaults, so this works with a settings class that does not have the Milvus fields yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from simsearch.collection.base import Collection
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.collection.write_log import LogMismatchError
from simsearch.index import IndexLoadError
from simsearch.index.open import LoadedIndex, check_model
from simsearch.models.bi_encoder import BiEncoder

CONNECT_TIMEOUT_S = 10.0


class CollectionOpenError(RuntimeError):
    """The configured collection cannot be opened; the message is one line that says how to fix it."""


def store_of(settings: Any) -> str:
    return str(getattr(settings, "store", "embedded"))


def milvus_collection_name(settings: Any) -> str:
    """The configured collection, or the index name made a Milvus name (letters, digits, underscores)."""
    explicit = getattr(settings, "milvus_collection", None)
    if explicit:
        return str(explicit)
    name = re.sub(r"[^A-Za-z0-9_]", "_", str(settings.index_name))
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def public_uri(uri: str) -> str:
    """``uri`` without credentials, for messages and ``GET /indexes``."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https", "tcp", "grpc") and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return uri


def milvus_token(settings: Any) -> str | None:
    secret = getattr(settings, "milvus_token", None)
    if secret is None:
        return None
    return str(secret.get_secret_value()) if hasattr(secret, "get_secret_value") else str(secret)


def is_local(uri: str) -> bool:
    """milvus-lite: a file path (``.db``), not a server address."""
    return "://" not in uri


def connect(uri: str, token: str | None = None, *, timeout: float | None = None) -> Any:
    """A ``MilvusClient`` for ``uri``, or :class:`CollectionOpenError` saying why there is none."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise CollectionOpenError(
            "store 'milvus' needs pymilvus and milvus-lite: pip install 'simsearch[milvus]'"
        ) from None
    shown = public_uri(uri)
    if is_local(uri):
        folder = Path(uri).resolve().parent
        if not folder.is_dir():
            raise CollectionOpenError(
                f"milvus-lite file {uri}: its folder {folder} does not exist (setting SIMSEARCH_MILVUS_URI)"
            )
    try:
        kwargs: dict[str, Any] = {"uri": uri, "timeout": timeout or CONNECT_TIMEOUT_S}
        if token:
            kwargs["token"] = token
        return MilvusClient(**kwargs)
    except Exception as exc:  # pymilvus raises MilvusException, ConnectionConfigException, gRPC errors
        reason = " ".join(str(getattr(exc, "message", None) or exc).split())
        where = "open the milvus-lite file" if is_local(uri) else "reach Milvus at"
        raise CollectionOpenError(f"cannot {where} {shown}: {reason} (setting SIMSEARCH_MILVUS_URI)") from None


def _open_embedded(settings: Any, index: LoadedIndex | None, encoder: BiEncoder) -> Collection:
    if index is None:
        raise CollectionOpenError(f"store 'embedded' needs the index {settings.index_name!r} open first")
    try:
        check_model(index, encoder)
        return EmbeddedCollection(index, writable=bool(getattr(settings, "writable", True)))
    except (IndexLoadError, LogMismatchError) as exc:
        raise CollectionOpenError(str(exc)) from None


def _open_milvus(settings: Any, index: LoadedIndex | None, encoder: BiEncoder) -> Collection:
    from simsearch.collection.milvus import MilvusCollection, MilvusCollectionError

    uri = str(getattr(settings, "milvus_uri", "indexes/milvus.db"))
    name = milvus_collection_name(settings)
    client = connect(uri, milvus_token(settings))
    try:
        if not client.has_collection(name):
            raise CollectionOpenError(
                f"Milvus collection {name!r} does not exist at {public_uri(uri)}: copy the index into it with "
                f"`python -m training.to_milvus --index {settings.index_name} --collection {name}` "
                "(setting SIMSEARCH_MILVUS_COLLECTION)"
            )
        writable = bool(getattr(settings, "writable", True))
        collection = MilvusCollection(client, name, uri=public_uri(uri), writable=writable, owns_client=True)
        collection.check_model(encoder.sha256, encoder.dim)
        return collection
    except MilvusCollectionError as exc:
        client.close()
        raise CollectionOpenError(f"{exc} (at {public_uri(uri)})") from None
    except CollectionOpenError:
        client.close()
        raise


OPENERS: dict[str, Callable[[Any, LoadedIndex | None, BiEncoder], Collection]] = {
    "embedded": _open_embedded,
    "milvus": _open_milvus,
}


def open_collection(settings: Any, index: LoadedIndex | None, encoder: BiEncoder) -> Collection:
    """The collection the settings name, paired with ``encoder`` (a mismatch is refused). ``index`` is the
    opened build for the embedded store, and ``None`` for Milvus (nothing is read from ``index_dir``)."""
    store = store_of(settings)
    opener = OPENERS.get(store)
    if opener is None:
        raise CollectionOpenError(f"unknown store {store!r}: use one of {', '.join(OPENERS)} (setting SIMSEARCH_STORE)")
    return opener(settings, index, encoder)
