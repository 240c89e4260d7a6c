"""The model registry: the models a service (or a job) may use, by name, each loaded once.

    SIMSEARCH_MODELS='{"e5-small": {"path": "models/e5-small", "query_prefix": "query: ",
                                    "document_prefix": "passage: ", "languages": ["*"]},
                       "ce-scifact": {"path": "models/ce", "kind": "cross"}}'

Always present: ``minilm`` (the packaged all-MiniLM-L6-v2), ``default`` (``SIMSEARCH_BI_MODEL``, the model
of the default collection and of a collection created without one) and, when ``SIMSEARCH_CROSS_MODEL`` is
set, ``cross``. An entry of ``SIMSEARCH_MODELS`` with one of these names replaces it. A model's query and
document prefixes and its languages live in its entry, so the documents and the queries of a collection
always get the same model's prefixes.

Loading is lazy and happens once per name (under a lock): every collection naming a model shares the one
loaded copy (and, in the service, its one micro-batcher).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simsearch.models.files import default_bi_model, display_name, model_hash

if TYPE_CHECKING:
    from simsearch.models.bi_encoder import BiEncoder
    from simsearch.models.cross_encoder import CrossScorer

Backend = Literal["torch", "onnx", "onnx-int8"]
PACKAGED = "minilm"
DEFAULT = "default"
CROSS = "cross"
ALL_LANGUAGES = "*"


class ModelEntry(BaseModel):
    """One registered model."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="A sentence-transformers folder (or a hub id where a hub is reachable).")
    kind: Literal["bi", "cross"] = Field("bi", description="bi: a bi-encoder (embeddings); cross: a cross-encoder.")
    query_prefix: str = Field("", description='Put before every query (E5: "query: ").')
    document_prefix: str = Field("", description='Put before every document (E5: "passage: ").')
    languages: list[str] | None = Field(
        None,
        description='ISO 639-1 codes of the languages the model was made for ("*": many); unset: not declared.',
    )
    backend: Backend | None = Field(None, description="Runtime; unset: SIMSEARCH_BACKEND.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a model folder")
        return value


def setting_of(name: str) -> str:
    """The setting that defines the registry entry ``name``, for messages."""
    return {DEFAULT: "SIMSEARCH_BI_MODEL", CROSS: "SIMSEARCH_CROSS_MODEL"}.get(name, "SIMSEARCH_MODELS")


class UnknownModelError(KeyError):
    """A model name the registry does not hold (or a model of the other kind)."""

    def __str__(self) -> str:
        return str(self.args[0])


def entries_from(
    models: Mapping[str, ModelEntry | str], bi_model: str, cross_model: str | None
) -> dict[str, ModelEntry]:
    """The registry's entries: the packaged model, ``default`` and ``cross`` from their settings, then the
    configured ones (which may replace those three)."""
    packaged = default_bi_model()
    out = {PACKAGED: ModelEntry(path=packaged, languages=["en"])}
    same_as_packaged = Path(bi_model).resolve() == Path(packaged).resolve() if Path(bi_model).exists() else False
    out[DEFAULT] = ModelEntry(path=bi_model, languages=["en"] if same_as_packaged else None)
    if cross_model:
        out[CROSS] = ModelEntry(path=cross_model, kind="cross")
    for name, entry in models.items():
        out[name] = entry if isinstance(entry, ModelEntry) else ModelEntry(path=str(entry))
    return out


@dataclass(frozen=True)
class LoadedModel:
    """A registered model, loaded: its name, its entry, and the encoder or cross-encoder."""

    name: str
    entry: ModelEntry
    model: Any  # BiEncoder or CrossScorer

    @property
    def sha256(self) -> str:
        return str(self.model.sha256)

    @property
    def display(self) -> str:
        """What callers without access to the server's files may see: the name and the folder's name."""
        return display_name(self.entry.path)


class ModelRegistry:
    """Named models, each loaded at most once. ``loader(entry)`` loads one (the service passes one that
    sets threads, device and backend) from its name and entry; ``entries`` come from :func:`entries_from`."""

    def __init__(self, entries: Mapping[str, ModelEntry], loader: Callable[[str, ModelEntry], Any]) -> None:
        self.entries = dict(entries)
        self._loader = loader
        self._loaded: dict[str, LoadedModel] = {}
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in self.entries}

    def entry(self, name: str, kind: Literal["bi", "cross"] = "bi") -> ModelEntry:
        found = self.entries.get(name)
        if found is None or found.kind != kind:
            known = ", ".join(sorted(n for n, e in self.entries.items() if e.kind == kind)) or "none"
            what = "bi-encoder" if kind == "bi" else "cross-encoder"
            raise UnknownModelError(
                f"no {what} named {name!r} is configured (known: {known}; setting SIMSEARCH_MODELS)"
            )
        return found

    def names(self, kind: Literal["bi", "cross"] | None = None) -> list[str]:
        return sorted(n for n, e in self.entries.items() if kind is None or e.kind == kind)

    def get(self, name: str, kind: Literal["bi", "cross"] = "bi") -> LoadedModel:
        """The loaded model, loading it on first use (once, whoever asks at the same time)."""
        entry = self.entry(name, kind)
        found = self._loaded.get(name)
        if found is not None:
            return found
        with self._locks[name]:
            found = self._loaded.get(name)
            if found is None:
                twin = self._same_model(entry)  # two names for one folder (default and minilm): one copy
                found = LoadedModel(name, entry, twin.model if twin is not None else self._loader(name, entry))
                self._loaded[name] = found
        return found

    def _same_model(self, entry: ModelEntry) -> LoadedModel | None:
        def where(e: ModelEntry) -> tuple[str, str, str | None]:
            path = Path(e.path)
            return (str(path.resolve()) if path.exists() else e.path, e.kind, e.backend)

        return next((m for m in self._loaded.values() if where(m.entry) == where(entry)), None)

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def peek(self, name: str) -> LoadedModel | None:
        """The model if it is loaded already (never loads)."""
        return self._loaded.get(name)

    def adopt(self, model: LoadedModel) -> None:
        """Take a model another registry of the same entries loaded (a runtime opened before the service)."""
        if self.entries.get(model.name) != model.entry:
            raise ValueError(f"model {model.name!r} was loaded from another entry than this registry's")
        self._loaded.setdefault(model.name, model)

    def bi(self, name: str) -> LoadedModel:
        return self.get(name, "bi")

    def cross(self, name: str) -> LoadedModel:
        return self.get(name, "cross")

    def find(self, sha256: str, kind: Literal["bi", "cross"] = "bi", prefer: str | None = None) -> str | None:
        """The name of a registered model whose weights hash to ``sha256`` (``prefer`` first), without loading
        any model: for builds that recorded a path and a hash but no registry name."""
        order = [prefer] if prefer in self.entries else []
        order += [n for n in self.names(kind) if n != prefer]
        for name in order:
            entry = self.entries[name]
            if entry.kind == kind and model_hash(entry.path) == sha256:
                return name
        return None


def bi_encoder(registry: ModelRegistry, name: str) -> BiEncoder:
    return registry.bi(name).model


def cross_encoder(registry: ModelRegistry, name: str) -> CrossScorer:
    return registry.cross(name).model
