"""Request and response bodies. Limits that are settings (text length, pair counts) are checked in the
routes, since a class-level schema cannot see them; they fail the same way, with HTTP 422 naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds a lone surrogate such as \\ud800)") from None
    return value


Text = Annotated[str, AfterValidator(_not_blank)]
Pair = Annotated[list[Text], Field(min_length=2, max_length=2, description="Two texts: [a, b].")]


class Strict(BaseModel):
    # strict: "10" is not a k and 1 is not a text; extra="forbid": a misspelt field is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


Mode = Literal["dense", "lexical", "hybrid", "rerank", "cur"]
MAX_LIST = 4096  # no request list is longer (the settings' limits are at most this): long lists fail at once


class FusionRequest(Strict):
    """Override the collection's measured fusion for this request."""

    method: Literal["rrf", "convex", "dense"] = Field(description="rrf, convex (weight alpha), or dense only.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the dense scores in the convex combination.")
    rrf_k: int = Field(60, ge=1, le=1000, description="The k of reciprocal rank fusion.")


class SearchRequest(Strict):
    query: Text = Field(description="What to search for.", examples=["Vitamin D deficiency raises the risk of MS."])
    k: int = Field(10, ge=1, le=100, description="Number of hits (1-100).")
    mode: Mode = Field(
        "dense",
        description="dense: bi-encoder + ANN. lexical: BM25. hybrid: both, fused as measured for the collection. "
        "rerank: the top k_r candidates (see `candidates`) re-scored by the cross-encoder. "
        "cur: the CUR approximation of the cross-encoder (k_i anchor calls), top k_r re-scored exactly.",
    )
    k_r: int | None = Field(
        None, ge=1, description="Cross-encoder budget: candidates re-scored (default 100; limit SIMSEARCH_MAX_RERANK)."
    )
    candidates: Literal["dense", "lexical", "hybrid"] = Field(
        "dense", description="rerank only: the first stage whose top k_r the cross-encoder re-scores."
    )
    filter: dict[str, Any] | None = Field(
        None,
        description='Metadata filter, Mongo-style: {"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}}; '
        "operators $eq $ne $gt $gte $lt $lte $in $nin $exists, and $and $or $not.",
        examples=[{"year": {"$gte": 2020}}],
    )
    fusion: FusionRequest | None = Field(None, description="hybrid only: override the measured fusion.")
    rerank_weight: float | None = Field(
        None,
        ge=0,
        le=1,
        description="rerank only: the cross-encoder's share of the final score, blended with the first stage's "
        "(default: the weight measured for the collection, else 1).",
    )


class SearchHit(BaseModel):
    id: str
    score: float = Field(
        description="dense: the cosine; lexical: BM25; hybrid: the fused score; rerank and cur: the "
        "cross-encoder's score (blended with the first stage's when rerank_weight < 1)."
    )
    title: str
    text: str
    metadata: dict[str, Any] | None = None


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    took_ms: float
    index: str
    truncated: bool = Field(description="The query was longer than the model's window and was cut to fit it.")
    mode: Mode
    cross_encoder_calls: int = Field(description="Cross-encoder calls this search spent (0 in dense mode).")


class SimilarityRequest(Strict):
    """Either ``pairs`` or ``source`` with ``targets``."""

    pairs: list[Pair] | None = Field(
        None, min_length=1, max_length=MAX_LIST, examples=[[["A man is eating.", "Someone eats food."]]]
    )
    source: Text | None = None
    targets: list[Text] | None = Field(None, min_length=1, max_length=MAX_LIST)
    model: Literal["bi", "cross"] = Field(
        "bi", description="Which model scores: the bi-encoder (cosine) or the cross-encoder (raw score)."
    )

    @model_validator(mode="after")
    def _one_form(self) -> SimilarityRequest:
        if self.pairs is not None and (self.source is not None or self.targets is not None):
            raise ValueError("send either `pairs` or `source` with `targets`, not both")
        if self.pairs is None and (self.source is None or self.targets is None):
            raise ValueError("send `pairs`, or `source` together with `targets`")
        return self


class SimilarityResponse(BaseModel):
    scores: list[float] = Field(description="One score per pair or target, in input order.")
    model: Literal["bi", "cross"] = Field(description="The model that answered.")
    took_ms: float
    truncated: list[int] = Field(
        description="Positions in `scores` whose texts were longer than the model's window and were cut."
    )


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    ready: bool
    reason: str | None = None
    index: str | None = None
    build_id: str | None = None
    documents: int | None = None
    model: str | None = None
    cross_model: str | None = None


class IndexInfoResponse(BaseModel):
    name: str
    folder: str = Field(description="The build folder being served (name@build-id).")
    manifest: dict[str, Any]


class ReloadResponse(BaseModel):
    index: str
    previous_build_id: str
    build_id: str
    documents: int


def _document_id(value: str) -> str:
    if not value.strip() or value != value.strip():
        raise ValueError("must be a non-empty id without surrounding spaces")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not hold control characters")
    return value


DocumentId = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_document_id)]


class DocumentIn(Strict):
    id: DocumentId
    text: Text = Field(description="What the models read (after the title).")
    title: str = Field("", max_length=4096)
    metadata: dict[str, Any] | None = Field(None, description="Returned with the document; filterable on /search.")


class UpsertRequest(Strict):
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_LIST, description="Inserted, or replaced by id.")


class DeleteRequest(Strict):
    ids: list[DocumentId] = Field(min_length=1, max_length=MAX_LIST)


class WriteResponse(BaseModel):
    sequence: int = Field(description="The collection's write sequence number after this batch.")
    inserted: list[str] = Field(default_factory=list)
    replaced: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    not_found: list[str] = Field(default_factory=list)
    took_ms: float


class DocumentOut(BaseModel):
    id: str
    title: str
    text: str
    metadata: dict[str, Any] | None = None


class CompactResponse(BaseModel):
    previous_build_id: str
    build_id: str
    sequence: int
    seconds: float
