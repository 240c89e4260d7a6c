"""A collection's specification: what it is made of, fixed when it is created and recorded with its data
(the embedded build's manifest, the Milvus companion collection). Pydantic only: the service, the client
and the jobs import it without FastAPI.

    {"model": "minilm", "cross": "ce-scifact", "index": "auto", "fusion": "auto"}

The models are *names* in the service's model registry (``SIMSEARCH_MODELS``), never paths: the registry
entry carries the path, the query and document prefixes and the languages, so a collection cannot be
searched with prefixes other than the ones it was written with.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

# ASCII letters, digits, '-' and '_', 1-64 characters: safe as a folder name, a URL segment and (escaped) a
# Milvus name; '.', '/', '%', ':' and '\' cannot appear, so no name escapes the index folder
COLLECTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_MODEL = "default"

IndexPolicy = Literal["auto", "flat", "hnsw", "ivf"]


def _collection_name(value: str) -> str:
    if not re.fullmatch(COLLECTION_NAME, value):
        raise ValueError("a collection name is 1-64 ASCII letters, digits, '-' or '_'")
    return value


CollectionName = Annotated[str, AfterValidator(_collection_name)]
ModelName = Annotated[str, Field(pattern=MODEL_NAME, description="A name in the model registry (SIMSEARCH_MODELS).")]


class FusionSpec(BaseModel):
    """A fixed fusion for ``hybrid``, instead of the measured one."""

    model_config = ConfigDict(extra="forbid", strict=True)
    method: Literal["rrf", "convex", "dense"] = Field(description="rrf, convex (weight alpha), or dense only.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the dense scores in the convex combination.")
    rrf_k: int = Field(60, ge=1, le=1000, description="The k of reciprocal rank fusion.")


class PassageSpec(BaseModel):
    """Long documents split into passages of at most ``tokens`` tokens of the model's tokenizer (the title
    and the model's special tokens come on top), ``overlap`` tokens shared by neighbours; a document is
    scored by its best passage."""

    model_config = ConfigDict(extra="forbid", strict=True)
    tokens: int = Field(ge=16, le=8192, description="Most tokens of a passage's text.")
    overlap: int = Field(0, ge=0, description="Tokens a passage shares with the one before (less than `tokens`).")


# `auto` passages: the configuration bench.passages measured best for the default model on SciFact and on
# long documents among those within 0.3 nDCG@10 of unsplit on short ones (DL19; 64 tokens with 16 of overlap
# was 0.4 better on the long sets and 0.6 worse on DL19: bench/results/passages.json, docs/results/passages.md)
AUTO_PASSAGE_TOKENS = 64
AUTO_OVERLAP_TOKENS = 0


def resolve_passages(passages: PassageSpec | str, room: int) -> PassageSpec | None:
    """The passages a specification's ``passages`` means for a model with ``room`` tokens for a passage's
    text (its window less its special tokens and document prefix): ``None`` for one vector per document."""
    if passages == "none":
        return None
    if isinstance(passages, PassageSpec):
        return passages
    tokens = max(1, min(AUTO_PASSAGE_TOKENS, room))
    return PassageSpec.model_construct(tokens=tokens, overlap=min(AUTO_OVERLAP_TOKENS, tokens // 4))


def _stored(value: object) -> object:
    """A specification recorded before ``passages`` existed held one vector per document: it keeps that."""
    if isinstance(value, dict) and "passages" not in value:
        return {**value, "passages": "none"}
    return value


class CollectionSpec(BaseModel):
    """What a collection is made of. Every field has a default; a collection keeps the values it was
    created with (a ``PUT`` with other values is a 409 naming the field)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: ModelName = Field(DEFAULT_MODEL, description="The bi-encoder, by its name in the model registry.")
    cross: ModelName | None = Field(
        None, description="The cross-encoder for `rerank`, `cur` and cross similarity, by registry name (optional)."
    )
    index: IndexPolicy = Field(
        "auto",
        description="Vector index: auto (exact up to 100,000 documents, then a graph, chosen again at each "
        "compaction), flat (always exact), hnsw (graph), ivf (inverted lists).",
    )
    fusion: FusionSpec | Literal["auto"] = Field(
        "auto", description="hybrid's fusion: auto (measured for the collection, else the stated default) or fixed."
    )
    analyser: Literal["english", "chinese", "standard"] = Field(
        "english",
        description="What BM25 makes of the text (documents and queries alike): english (stop words, stemming), "
        "chinese (jieba words and single characters; English words as english), standard (language-neutral).",
    )
    passages: PassageSpec | Literal["auto", "none"] = Field(
        "auto",
        description="How long documents are searched. auto: split into passages of "
        f"{AUTO_PASSAGE_TOKENS} tokens without overlap (what the default model measured best), or the model's "
        "window when that is smaller, each document scored by its best passage; "
        "{tokens, overlap}: passages of that size; none: one vector per document (a text longer than the "
        "model's window is cut, and the collection says how many are).",
    )

    def differences(self, other: CollectionSpec) -> list[str]:
        """The fields whose values differ from ``other``'s, in field order."""
        mine, theirs = self.model_dump(mode="json"), other.model_dump(mode="json")
        return [name for name in type(self).model_fields if mine.get(name) != theirs.get(name)]


# the type of a recorded specification (a manifest's, a Milvus collection's): see _stored
StoredSpec = Annotated[CollectionSpec | None, BeforeValidator(_stored)]
