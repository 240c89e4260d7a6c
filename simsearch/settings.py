"""The one settings class. Every value can come from the environment (prefix ``SIMSEARCH_``) or a
``.env`` file; it is validated when built, so a bad value stops start-up with a message naming it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from simsearch.api.spec import COLLECTION_NAME
from simsearch.models.files import default_bi_model
from simsearch.models.registry import ModelEntry

INDEX_NAME_PATTERN = COLLECTION_NAME  # one rule for a collection's name, whether a job or the API makes it
MIN_KEY_CHARS = 16


def _check_key(key: str) -> None:
    if len(key.strip()) < MIN_KEY_CHARS:
        raise ValueError(
            f"keys must be at least {MIN_KEY_CHARS} characters "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )


class ScopedKey(BaseModel):
    """A key with its scopes and, optionally, the only collections it may use."""

    model_config = ConfigDict(extra="forbid")
    key: SecretStr
    scopes: list[Literal["read", "write", "admin"]] = Field(default=["read"], min_length=1)
    collections: list[str] | None = Field(None, min_length=1)

    @field_validator("key")
    @classmethod
    def _strong(cls, key: SecretStr) -> SecretStr:
        _check_key(key.get_secret_value())
        return key


class Settings(BaseSettings):
    """Configuration shared by the service and the offline jobs."""

    model_config = SettingsConfigDict(
        env_prefix="SIMSEARCH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Models -------------------------------------------------------------------------------------
    bi_model: str = Field(
        default_factory=default_bi_model,
        description="Bi-encoder: a sentence-transformers folder (a hub id where a hub is reachable).",
    )
    cross_model: str | None = Field(
        None,
        description='Trained cross-encoder folder: enables `/similarity` with `model: "cross"` and the '
        "`rerank` and `cur` search modes.",
    )
    device: str = Field("cpu", description="Torch device for the encoders.")
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx",
        description="Runtime of both encoders: `torch`, `onnx` (ONNX Runtime fp32) or `onnx-int8` "
        "(dynamic int8: about twice the tokens per second, nDCG@10 within 0.4 of fp32, docs/results/encoding.md; "
        "check it on a collection with training.check_backend). Exported into `<model>/onnx/` by the install "
        "step for the default model, on first use for others.",
    )
    models: Annotated[dict[str, ModelEntry | str], NoDecode] = Field(
        default_factory=dict,
        description='The model registry as JSON: name -> folder, or name -> {"path", "kind" (bi or cross), '
        '"query_prefix", "document_prefix", "languages", "backend"}. Always present besides: `minilm` (the '
        "packaged all-MiniLM-L6-v2), `default` (SIMSEARCH_BI_MODEL) and `cross` (SIMSEARCH_CROSS_MODEL, when set).",
    )
    encode_batch_size: int = Field(32, ge=1, le=4096, description="Batch size of offline encoding.")
    torch_threads: int | None = Field(
        None, ge=1, description="Intra-op threads of the models (torch and ONNX Runtime)."
    )

    # Data and indexes ---------------------------------------------------------------------------
    data_dir: Path = Field(Path("../shared/data"), description="Root of the evaluation and training data.")
    index_dir: Path = Field(Path("indexes"), description="Folder that holds the index folders.")
    index_name: str | None = Field(
        "scifact",
        description="The default collection: what the routes without a collection in their path (`/search`, "
        "`/documents`) use; it must exist when the service starts. Empty: no default collection.",
    )
    max_collections: int = Field(
        100, ge=1, le=10_000, description="Most collections one service holds; a create beyond gets 409."
    )
    verify_checksums: bool = Field(True, description="Check every index file's SHA-256 when loading.")
    store: Literal["embedded", "milvus"] = Field(
        "embedded",
        description="Where the collection lives: the embedded build (FAISS + SQLite + tantivy, in-process) or a "
        "Milvus collection (docs/scale.md).",
    )
    milvus_uri: str = Field(
        "indexes/milvus.db", description="store=milvus: a milvus-lite file, or a server address (http://host:19530)."
    )
    milvus_token: SecretStr | None = Field(None, description="store=milvus: user:password or an API key.")
    milvus_collection: str | None = Field(
        None, description="store=milvus: the collection (default: the index name, with . and - made _)."
    )
    read_only: bool = Field(
        False,
        description="This process never writes the collection (a replica): writes get 409; it follows the "
        "writer's log every SIMSEARCH_REFRESH_S and swaps to the builds the writer publishes.",
    )
    max_write_batch: int = Field(256, ge=1, le=4096, description="Most documents (or ids) in one write request.")
    compact_after: int = Field(
        10_000,
        ge=0,
        description="Uncompacted writes (documents upserted or deleted since the build) that start a "
        "compaction in the background; 0: only by job or `POST /admin/compact`.",
    )
    refresh_s: float = Field(
        1.0, gt=0, description="How often the service picks up writes other processes appended to the log."
    )

    # Service ------------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the service binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port the service binds.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body; larger gets HTTP 413.")
    body_timeout_s: float = Field(10.0, gt=0, description="Time allowed to send a request body; slower gets 408.")
    keep_alive_s: int = Field(5, ge=1, description="Idle keep-alive connections are closed after this.")
    header_timeout_s: float = Field(
        5.0, gt=0, description="A connection that does not complete its request headers within this is closed."
    )
    max_in_flight: int = Field(
        512, ge=1, description="Requests being served at once beyond this get 503 at once (/health and /ready never)."
    )
    max_batch: int = Field(64, ge=1, description="Most texts (or pairs) in one batched model call.")
    max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="Extra wait to fill a batch, only when several requests are already queued (a lone request "
        "never waits). 0: a free stream takes what is queued at once; with 2 streams that serves more than "
        "waiting 2 ms (docs/results/serving.md).",
    )
    model_streams: int | None = Field(
        None,
        ge=1,
        description="Batches each model runs at once under load, each on 1/streams of the threads "
        "(default: 2 on 2 or more cores, else 1); a lone request still gets every thread.",
    )
    max_cross_queue: int = Field(
        4096,
        ge=1,
        description="Pairs waiting for the cross-encoder before requests get 429 (a rerank of k_r costs k_r pairs).",
    )
    max_queue: int = Field(
        1024, ge=1, description="Texts waiting for the bi-encoder before requests get 429 with `Retry-After`."
    )
    request_timeout_s: float = Field(30.0, gt=0, description="A request waiting longer for its model gets 503.")
    max_rerank: int = Field(500, ge=1, description="Largest `k_r` (candidates re-scored by the cross-encoder).")
    max_pairs: int = Field(256, ge=1, le=4096, description="Most pairs one /similarity request may send.")
    max_targets: int = Field(256, ge=1, le=4096, description="Most targets one /similarity request may send.")
    max_text_chars: int = Field(
        8192, ge=16, description="Longest text (in characters) a request may send; longer gets HTTP 422."
    )

    # Security and operations -------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    log_format: Literal["json", "text"] = Field("json", description="Log lines as JSON objects or plain text.")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Bearer keys; empty: no authentication. `/health` and `/ready` stay open.",
    )
    write_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Bearer keys that may write documents (and read); empty: writes are off "
        "unless SIMSEARCH_ANONYMOUS_WRITES is true.",
    )
    anonymous_writes: bool = Field(
        False, description="Accept document writes without a key (for a private network only)."
    )
    admin_key: SecretStr | None = Field(
        None,
        description="Bearer key of the admin endpoints (`POST /admin/reload`, `/admin/compact`); unset: they "
        "are off (SIGHUP still reloads).",
    )
    scoped_keys: Annotated[list[ScopedKey], NoDecode] = Field(
        default_factory=list,
        description='Keys limited to scopes and collections, as JSON: [{"key": "...", "scopes": ["read", '
        '"write"], "collections": ["docs", "notes"]}]; `collections` unset: every collection. A key limited to '
        "collections gets 403 on others and does not see them in `GET /collections`.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins allowed by CORS; empty: CORS off."
    )

    @model_validator(mode="after")
    def _limits_fit_the_queues(self) -> Settings:
        """A request larger than its whole queue would get 429 for ever: refuse such settings at start."""
        texts = max(self.max_targets + 1, 2 * self.max_pairs, self.max_write_batch)
        if self.max_queue < texts:
            raise ValueError(
                f"max_queue ({self.max_queue}) must hold the largest request's texts ({texts}: max_targets + 1, "
                "2 x max_pairs or max_write_batch)"
            )
        # cur scores up to max_rerank candidates plus a quarter more among uncompacted writes in one call
        pairs = max(self.max_rerank + max(1, self.max_rerank // 4), self.max_pairs, self.max_targets)
        if self.max_cross_queue < pairs:
            raise ValueError(
                f"max_cross_queue ({self.max_cross_queue}) must hold the largest request's pairs ({pairs}: "
                "1.25 x max_rerank, max_pairs or max_targets)"
            )
        return self

    @property
    def writable(self) -> bool:
        return not self.read_only

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_keys", "write_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        """Comma-separated keys. An empty variable means none; an empty item among others (``a,,b`` or ``,``)
        is a mistake that would otherwise leave a list with fewer keys than meant, so it is refused."""
        if isinstance(value, str):
            if not value.strip():
                return []
            parts = [part.strip() for part in value.split(",")]
            if any(not p for p in parts):
                raise ValueError("holds an empty key (two commas in a row, or a comma at an end)")
            return parts
        return value

    @field_validator("api_keys", "write_keys")
    @classmethod
    def _strong_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            _check_key(key.get_secret_value())
        return keys

    @field_validator("admin_key", mode="before")
    @classmethod
    def _admin_key(cls, value: object) -> object:
        if isinstance(value, str | SecretStr):
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not text.strip():
                return None  # set but empty: the same as unset (admin off), never an empty token that matches
            _check_key(text)
        return value

    @field_validator("bi_model")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a model folder or hub id")
        return value

    @field_validator("index_name", mode="before")
    @classmethod
    def _index_name(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # set but empty: no default collection
        if isinstance(value, str) and not re.fullmatch(INDEX_NAME_PATTERN, value):
            raise ValueError("a collection name is 1-64 ASCII letters, digits, '-' or '_'")
        return value

    @field_validator("scoped_keys", mode="before")
    @classmethod
    def _scoped_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @property
    def collection(self) -> str:
        """The default collection's name (what a job works on unless told otherwise)."""
        if self.index_name is None:
            raise ValueError("no collection named: SIMSEARCH_INDEX_NAME is empty (name one with --name)")
        return self.index_name

    @property
    def index_path(self) -> Path:
        return self.index_dir / self.collection
