"""Reaching Milvus: the client for the configured address, its name for the default collection, and
addresses without their credentials. Each problem a start-up can meet becomes one
:class:`CollectionOpenError` whose message names what is wrong, where, and the setting that fixes it: a
Milvus address nobody answers at, or a milvus-lite file whose folder is missing. (The stores that list,
create and open collections: simsearch.collection.manager.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CONNECT_TIMEOUT_S = 10.0


class CollectionOpenError(RuntimeError):
    """The configured collection cannot be opened; the message is one line that says how to fix it."""


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
