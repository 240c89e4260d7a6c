"""``manifest.json``: what an index folder holds and how it was made."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simsearch.api.spec import StoredSpec
from simsearch.atomic import atomic_write_json
from simsearch.index.layout import MANIFEST_FILE
from simsearch.models.backend_check import BackendCheck

FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A manifest that is missing, unreadable, or describes something this version cannot load."""


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="The model's name in the registry (simsearch.models.registry).")
    path: str = Field(description="Model path or id as configured when the index was built.")
    sha256: str = Field(description="Hash of the model's weights and configs (simsearch.models.files).")
    dimension: int
    max_seq_length: int
    document_prefix: str = ""
    whitening: dict[str, Any] | None = None
    backend: str | None = Field(None, description="The runtime that encoded the documents (torch, onnx, onnx-int8).")


class IndexInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    recall_at_10: float | None = Field(None, description="Measured against exact search; 1.0 when exact.")
    requested: str | None = Field(None, description="The index type asked for (auto: chosen by size at each build).")
    target_recall: float | None = Field(None, description="Recall@10 the search parameter was tuned to reach.")
    target_reached: bool | None = Field(None, description="Whether any setting reached the target recall.")
    recall_measured_on: str | None = Field(
        None, description="What recall was measured on: held-apart corpus vectors, or given queries."
    )


class SourceInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    format: str
    sha256: str


class CrossEncoderInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    sha256: str
    max_seq_length: int


class CurInfo(BaseModel):
    """How the CUR arrays in ``cur/`` were fitted (simsearch.cur.estimator)."""

    model_config = ConfigDict(extra="forbid")
    k_q: int = Field(description="Anchor queries (rows of R).")
    k_i: int = Field(description="Anchor items (rows of E): cross-encoder calls per query before re-ranking.")
    selection: str = Field(description="How anchor items were chosen: random or kmeans.")
    seed: int
    rcond: float = Field(description="Rank cut-off of the pseudo-inverse, relative to the largest singular value.")
    rank: int = Field(description="Numerical rank of R[:, anchors] kept by the cut-off.")
    query_source: str
    cross_encoder: CrossEncoderInfo
    calls: int = Field(description="Cross-encoder calls the fit made (k_q x N).")
    seconds: float
    items: Literal["documents", "passages"] = Field(
        "documents",
        description="What E has a column for: each document, or each passage of a build split into passages "
        "(a document then scores as its best passage, as in dense search).",
    )


class LexicalInfo(BaseModel):
    """The BM25 index in ``lexical/`` (simsearch.lexical)."""

    model_config = ConfigDict(extra="forbid")
    engine: str
    analyzer: str = Field(description="What the analyser does, in words.")
    analyser: str = Field("english", description="The analyser's name (simsearch.text.analysers).")
    documents: int
    bytes: int
    build_seconds: float


class FusionInfo(BaseModel):
    """How ``hybrid`` search fuses dense and lexical results for this collection, and why."""

    model_config = ConfigDict(extra="forbid")
    method: str = Field(description="rrf, convex, or dense (fusion did not help: hybrid answers as dense).")
    alpha: float | None = Field(None, description="Weight of the dense score in the convex combination.")
    rrf_k: int = 60
    chosen_on: str = Field(description="The validation split the choice was measured on, or 'default'.")
    validation: dict[str, Any] = Field(default_factory=dict, description="nDCG@10 of every candidate measured.")
    beta: float | None = Field(
        None,
        description="Per-query weighting of the convex combination: how far each query's α moves with its lists' "
        "score gaps (none: α is fixed).",
    )
    dense_gap: float | None = Field(None, description="With beta: the collection's median dense gap (its queries').")
    lexical_gap: float | None = Field(None, description="With beta: the collection's median lexical gap.")


class RerankInfo(BaseModel):
    """How ``rerank`` blends the cross-encoder with the first stage for this collection, and why."""

    model_config = ConfigDict(extra="forbid")
    weight: float = Field(description="The cross-encoder's share of the final score (1: the cross-encoder alone).")
    cross_encoder: CrossEncoderInfo
    candidates: str = Field(description="The first stage the weight was measured with.")
    k_r: int
    chosen_on: str
    validation: dict[str, Any] = Field(default_factory=dict, description="nDCG@10 of every weight measured.")


class PassageInfo(BaseModel):
    """How the documents became vectors: one each, or split into passages (simsearch.text.passages)."""

    model_config = ConfigDict(extra="forbid")
    tokens: int | None = Field(description="Most tokens of a passage's text; null: one vector per document.")
    overlap: int = 0
    passages: int = Field(description="Vectors in the index (passages; documents when not split).")
    split: int = Field(0, description="Documents of more than one passage.")
    over_window: int = Field(
        0, description="Documents (or passages) whose model input is longer than the model's window: cut."
    )


class ScriptInfo(BaseModel):
    """What the documents are written in, counted at build: a model or analyser made for other languages
    is then said, with the share (GET /collections/{name} warnings)."""

    model_config = ConfigDict(extra="forbid")
    documents: int
    cjk: int = Field(0, description="Documents whose letters are mostly Chinese, Japanese or Korean characters.")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = FORMAT_VERSION
    name: str
    build_id: str
    built_at: datetime
    build_seconds: float
    docs_per_s: float
    tokens_per_s: float | None = Field(None, description="Tokens the model read per second of encoding.")
    count: int
    model: ModelInfo
    index: IndexInfo
    source: SourceInfo
    files: dict[str, str] = Field(description="File name -> SHA-256, checked at load time.")
    cur: CurInfo | None = None
    lexical: LexicalInfo | None = None
    fusion: FusionInfo | None = None
    rerank: RerankInfo | None = None
    spec: StoredSpec = Field(None, description="The collection's specification, fixed at creation.")
    passages: PassageInfo | None = Field(None, description="One vector per document, or per passage.")
    scripts: ScriptInfo | None = Field(None, description="The scripts the documents are written in.")
    backend_checks: dict[str, BackendCheck] = Field(
        default_factory=dict, description="Faster backends checked against the reference on this collection's text."
    )
    sequence: int = Field(0, description="The last write batch of the collection's log this build contains.")
    compacted_from: str | None = Field(None, description="The build this one was compacted from, if any.")

    def write(self, folder: Path) -> None:
        atomic_write_json(Path(folder) / MANIFEST_FILE, json.loads(self.model_dump_json()))

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = Path(folder) / MANIFEST_FILE
        if not path.is_file():
            raise ManifestError(f"{path} is missing: {folder} is not an index folder")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path} is not valid JSON: {exc}") from None
        version = raw.get("format_version") if isinstance(raw, dict) else None
        if version != FORMAT_VERSION:
            raise ManifestError(
                f"{path} has format_version {version!r}; this version reads {FORMAT_VERSION}: rebuild the index"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ManifestError(f"{path} is invalid at {where}: {first['msg']}") from None
