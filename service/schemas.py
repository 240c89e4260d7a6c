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


class SearchRequest(Strict):
    query: Text = Field(description="What to search for.", examples=["Vitamin D deficiency raises the risk of MS."])
    k: int = Field(10, ge=1, le=100, description="Number of hits (1-100).")
    mode: Literal["dense", "rerank", "cur"] = Field(
        "dense",
        description="dense: bi-encoder + FAISS. rerank: dense top k_r re-scored by the cross-encoder. "
        "cur: the CUR approximation of the cross-encoder (k_i anchor calls), top k_r re-scored exactly.",
    )
    k_r: int | None = Field(
        None, ge=1, description="Cross-encoder budget: candidates re-scored (default 100; limit SIMSEARCH_MAX_RERANK)."
    )


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="Cosine similarity of query and document.")
    title: str
    text: str
    metadata: dict[str, Any] | None = None


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    took_ms: float
    index: str
    truncated: bool = Field(description="The query was longer than the model's window and was cut to fit it.")
    mode: Literal["dense", "rerank", "cur"]
    cross_encoder_calls: int = Field(description="Cross-encoder calls this search spent (0 in dense mode).")


class SimilarityRequest(Strict):
    """Either ``pairs`` or ``source`` with ``targets``."""

    pairs: list[Pair] | None = Field(None, min_length=1, examples=[[["A man is eating.", "Someone eats food."]]])
    source: Text | None = None
    targets: list[Text] | None = Field(None, min_length=1)
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
