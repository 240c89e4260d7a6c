"""The Milvus side's manifest (:class:`MilvusInfo`) and the schema of a collection: one row per document
with its vector, BM25's sparse vector, the filter columns and, with CUR arrays, its column of E."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simsearch.api.spec import StoredSpec
from simsearch.collection.milvus.companion import MetaStore, _npy
from simsearch.index.manifest import CurInfo, FusionInfo, ModelInfo, RerankInfo

if TYPE_CHECKING:
    from simsearch.collection.milvus.collection import MilvusCollection

FORMAT_VERSION = 1
ID_BYTES = 4096  # a document id of up to 4 KB of UTF-8 (the API allows 512 characters)
TEXT_BYTES = 65_535  # Milvus's VARCHAR limit: longer documents are refused, not cut
JSON_BYTES = 65_536
TOP_K_MAX = 16_384  # Milvus's limit on one search's results
DOC_FIELDS = ["title", "content", "metadata", "meta_kinds"]
# the embedded lexical index's analyser (simsearch.lexical), spelled in Milvus's terms
ANALYZER: dict[str, Any] = {
    "tokenizer": "standard",
    "filter": [
        "lowercase",
        {"type": "length", "max": 40},
        {"type": "stop", "stop_words": ["_english_"]},
        {"type": "stemmer", "language": "english"},
    ],
}
# analysers other than english: the field holds the analysed terms already (codec.lexical_text), separated
# by spaces: Milvus only splits them again
TERMS_ANALYZER: dict[str, Any] = {"tokenizer": "whitespace"}
IndexType = Literal["FLAT", "IVF_FLAT", "AUTOINDEX"]  # what milvus-lite builds (it refuses HNSW)


def has_passages(info: MilvusInfo) -> bool:
    """One row per passage (with the document's id in ``doc``), rather than one per document."""
    return info.spec is not None and info.spec.passages != "none"


def lexical_field(info: MilvusInfo) -> str:
    """The field BM25 reads: ``content`` with the english analyser and a row per document, else ``lexical``
    (the analysed terms: on a document's first passage only, when it has passages)."""
    plain = info.spec is None or (info.spec.analyser == "english" and not has_passages(info))
    return "content" if plain else "lexical"


class MilvusCollectionError(RuntimeError):
    """A Milvus collection that is missing, or was made for another model or by something else."""


class DocumentGoneError(RuntimeError):
    """A document found by a search was deleted before the search read it: search again."""


class MilvusIndexInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: IndexType = "FLAT"
    nlist: int | None = Field(None, description="IVF lists (per sealed segment).")
    nprobe: int | None = Field(None, description="Lists searched, tuned to the target recall.")
    recall_at_10: float | None = Field(None, description="Measured against exact search after loading.")
    target_recall: float | None = None
    recall_queries: int | None = None
    recall_measured_on: str | None = Field(None, description="Held-apart corpus vectors, or given queries.")
    indexed_rows: int | None = Field(
        None,
        description="Rows the index covered when measured (the rest searched exactly; milvus-lite may index none).",
    )


class MilvusInfo(BaseModel):
    """What a Milvus collection holds and how it was made: the Milvus side's manifest."""

    model_config = ConfigDict(extra="forbid")
    format_version: int = FORMAT_VERSION
    name: str
    model: ModelInfo
    index: MilvusIndexInfo = Field(default_factory=MilvusIndexInfo)
    analyzer: dict[str, Any] = Field(default_factory=lambda: dict(ANALYZER))
    fusion: FusionInfo | None = None
    rerank: RerankInfo | None = None
    cur: CurInfo | None = None
    spec: StoredSpec = Field(None, description="The collection's specification, fixed at creation.")
    collection: str | None = Field(None, description="The collection's name in the API, when it differs.")
    source: dict[str, Any] = Field(default_factory=dict, description="Where the documents came from.")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


@dataclass
class CurData:
    """The CUR arrays a ``cur`` search needs besides each document's column of E."""

    anchor_ids: list[str | None]  # None: an anchor no longer in the collection (its text still defines E)
    anchor_texts: list[str]
    anchor_queries: list[str]  # a new document's column is U · CE(anchor queries × document)
    U: np.ndarray  # (k_i, k_q)


def create_collection(
    client: Any,
    info: MilvusInfo,
    cur: CurData | None = None,
    *,
    uri: str = "",
    replace: bool = False,
    sequence: int = 0,
) -> MilvusCollection:
    """Make an empty collection for ``info``'s model (and CUR arrays), with its companion records;
    ``sequence``: the write sequence to continue from (the copied collection's)."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    name = info.name
    meta = MetaStore(client, name)
    for existing in (name, meta.name):
        if client.has_collection(existing):
            if not replace:
                raise MilvusCollectionError(
                    f"Milvus collection {existing!r} exists: copy into another, or replace it (--replace)"
                )
            client.drop_collection(existing)
    description = json.dumps({"simsearch": FORMAT_VERSION, "model": info.model.model_dump(mode="json")})
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=description)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=2 * ID_BYTES)
    schema.add_field("title", DataType.VARCHAR, max_length=TEXT_BYTES)
    analysed = lexical_field(info)
    if analysed == "content":  # the english analyser: BM25 reads the text as it is
        schema.add_field(
            "content", DataType.VARCHAR, max_length=TEXT_BYTES, enable_analyzer=True, analyzer_params=ANALYZER
        )
    else:  # another analyser: BM25 reads the text as simsearch.text.analysers prepared it, as the embedded store
        schema.add_field("content", DataType.VARCHAR, max_length=TEXT_BYTES)
        schema.add_field(
            analysed, DataType.VARCHAR, max_length=TEXT_BYTES, enable_analyzer=True, analyzer_params=TERMS_ANALYZER
        )
    if has_passages(info):  # a row per passage: its document, its place in it, its span of the text
        schema.add_field("doc", DataType.VARCHAR, max_length=2 * ID_BYTES)
        schema.add_field("ord", DataType.INT64)
        schema.add_field("pstart", DataType.INT64)
        schema.add_field("pend", DataType.INT64)
    schema.add_field("metadata", DataType.JSON)  # milvus-lite refuses nullable fields: {} for none
    schema.add_field("meta_values", DataType.JSON)
    schema.add_field("meta_kinds", DataType.JSON)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=info.model.dimension)
    schema.add_function(Function("bm25", FunctionType.BM25, input_field_names=[analysed], output_field_names="sparse"))
    index = client.prepare_index_params()
    params = {"nlist": info.index.nlist} if info.index.type == "IVF_FLAT" else {}
    index.add_index("vector", index_type=info.index.type, metric_type="IP", params=params)
    index.add_index(
        "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": 1.2, "bm25_b": 0.75}
    )
    if cur is not None:
        if info.cur is None or cur.U.shape != (info.cur.k_i, info.cur.k_q):
            raise ValueError(f"U has shape {cur.U.shape}; the CUR info says k_i x k_q")
        schema.add_field("cur", DataType.FLOAT_VECTOR, dim=info.cur.k_i)
        schema.add_field("has_cur", DataType.BOOL)
        index.add_index("cur", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    meta.create()
    records = {"info": info.model_dump_json(), "sequence": str(sequence)}
    if cur is not None:
        records.update(
            {
                "cur.anchor_ids": json.dumps(cur.anchor_ids, ensure_ascii=False),
                "cur.anchor_texts": json.dumps(cur.anchor_texts, ensure_ascii=False),
                "cur.anchor_queries": json.dumps(cur.anchor_queries, ensure_ascii=False),
                "cur.U": _npy(cur.U),
            }
        )
    meta.put(records)
    from simsearch.collection.milvus.collection import MilvusCollection

    return MilvusCollection(client, name, uri=uri)
