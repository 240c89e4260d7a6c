"""The wire format: request and response bodies of the HTTP API, pydantic only, so that the service
(service/) and the Python client (simsearch.client) share one definition.

Limits that are settings (text length, pair counts) are checked in the routes, since a class-level schema
cannot see them; they fail the same way, with HTTP 422 naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from simsearch.api.spec import CollectionSpec


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


class PassageOut(BaseModel):
    """The passage a hit is scored by: its index among the document's passages, its character offsets in
    the document's `text` and its text (the whole text when the document is one passage)."""

    index: int
    start: int
    end: int
    text: str


class SearchHit(BaseModel):
    id: str
    score: float = Field(
        description="dense: the cosine; lexical: BM25; hybrid: the fused score; rerank and cur: the "
        "cross-encoder's score (blended with the first stage's when rerank_weight < 1)."
    )
    title: str
    text: str
    metadata: dict[str, Any] | None = None
    passage: PassageOut | None = Field(None, description="The passage the document is scored by.")


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    took_ms: float
    collection: str = Field(description="The collection searched.")
    index: str = Field(description="The same as `collection` (the name the first version of the API used).")
    truncated: bool = Field(description="The query was longer than the model's window and was cut to fit it.")
    mode: Mode
    cross_encoder_calls: int = Field(description="Cross-encoder calls this search spent (0 in dense mode).")
    terms: list[str] = Field(
        default_factory=list, description="The query's terms as the collection's analyser makes them (to highlight)."
    )


class SimilarityRequest(Strict):
    """Either ``pairs`` or ``source`` with ``targets``."""

    pairs: list[Pair] | None = Field(
        None, min_length=1, max_length=MAX_LIST, examples=[[["A man is eating.", "Someone eats food."]]]
    )
    source: Text | None = None
    targets: list[Text] | None = Field(None, min_length=1, max_length=MAX_LIST)
    model: str = Field(
        "bi",
        min_length=1,
        max_length=64,
        examples=["bi", "cross"],
        description="Which model scores: `bi` (the default bi-encoder: cosine), `cross` (the default cross-encoder: "
        "its raw score), or a model's name in the registry (GET /models).",
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
    model: str = Field(description="The model that answered, as the request named it.")
    took_ms: float
    truncated: list[int] = Field(
        description="Positions in `scores` whose texts were longer than the model's window and were cut."
    )


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class CollectionState(BaseModel):
    """A collection as ``/ready`` and ``GET /collections`` list it."""

    name: str
    state: Literal["ready", "unavailable"] = Field(description="ready, or unavailable (see `reason`).")
    reason: str | None = None
    documents: int | None = Field(None, description="Documents it holds now: its build's and the writes since.")
    model: str | None = Field(None, description="Its bi-encoder's name in the registry.")
    backend: str | None = None


class ReadyResponse(BaseModel):
    ready: bool
    reason: str | None = None
    index: str | None = Field(None, description="The default collection (SIMSEARCH_INDEX_NAME).")
    build_id: str | None = Field(None, description="The default collection's build.")
    documents: int | None = Field(None, description="Documents the default collection holds now (build + writes).")
    build_documents: int | None = Field(None, description="Documents in the default collection's build.")
    model: str | None = None
    cross_model: str | None = None
    collections: list[CollectionState] = Field(
        default_factory=list, description="Every collection, when reads need no key (else see GET /collections)."
    )
    collections_loaded: int | None = Field(None, description="How many collections are loaded.")


class LiveCounts(BaseModel):
    sequence: int = Field(description="The collection's write sequence number.")
    documents: int = Field(description="Documents it holds now: its build's and the writes since.")
    build_documents: int = Field(description="Documents in the build it serves.")
    uncompacted: int = Field(description="Documents written since that build (folded in by compaction).")


class IndexInfoResponse(BaseModel):
    name: str
    folder: str = Field(description="The build folder being served (name@build-id), or the Milvus collection.")
    manifest: dict[str, Any] = Field(description="What the build (or the Milvus companion) recorded.")
    live: LiveCounts


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


# ---- collections ------------------------------------------------------------------------------------------


class PassagesInUse(BaseModel):
    """What a collection's ``passages`` resolved to for its model (``auto`` fits the model's window)."""

    tokens: int
    overlap: int


class CollectionInfo(BaseModel):
    """``GET /collections/{name}``: the specification, the recorded manifest, live counts and warnings."""

    name: str
    backend: str
    spec: CollectionSpec
    passages: PassagesInUse | None = Field(
        description="The passages documents are split into as this collection's model reads them (`auto` "
        "resolved); null: one vector per document."
    )
    folder: str
    build_id: str
    manifest: dict[str, Any] = Field(description="What the build (or the Milvus companion) recorded.")
    live: LiveCounts
    models: dict[str, Any] = Field(description="The models it uses: names, folders' names and hashes.")
    warnings: list[str] = Field(default_factory=list, description="What may make its results worse, measured.")


class CollectionCreated(BaseModel):
    """``PUT /collections/{name}``: 201 when made, 200 when it existed with this specification."""

    name: str
    created: bool
    spec: CollectionSpec


class CollectionList(BaseModel):
    collections: list[CollectionState]


class CollectionDeleted(BaseModel):
    name: str
    deleted: bool = True


class ModelDescription(BaseModel):
    name: str
    kind: Literal["bi", "cross"]
    folder: str = Field(description="The model folder's name (never its path on the server).")
    languages: list[str] | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    loaded: bool


class ModelList(BaseModel):
    models: list[ModelDescription]
