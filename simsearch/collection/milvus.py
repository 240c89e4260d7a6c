"""The Milvus collection: the interface of simsearch.collection.base on a Milvus server, a cluster
(``MilvusClient(uri="http://host:19530", token=...)``) or milvus-lite in-process (``MilvusClient("x.db")``).

One Milvus collection ``<name>`` holds the documents, one row each: the primary key (the document id,
hex-encoded UTF-8), ``title``, ``content`` (title and text, what BM25 and the models read), ``metadata``,
the filter columns (below), ``vector`` (FLAT or IVF_FLAT, inner product), ``sparse`` (filled by Milvus's
BM25 function from ``content``, a sparse inverted index) and, with CUR arrays, ``cur`` (the document's
column of E, FLAT inner product) and ``has_cur``. The schema's
description holds the model's hash and dimension (milvus-lite keeps no collection properties). A small
companion collection ``<name>__simsearch`` holds the rest: how the data was made, the write sequence, the
CUR anchors, U and anchor texts.

Keys: the primary key is the document id (hex: pymilvus 2.5 quotes ids into expressions without escaping
them), so Milvus's upsert replaces a document by id in the same request and no id-to-key table has to be
kept in step across writers. The search pipeline wants ints: a view's key is the id itself as an integer
(a 0x01 byte, then its UTF-8 bytes, read big-endian), the same in every view and process, without a
table or a collision; Python ints have no width, and nothing outside a view computes with keys.

Consistency: every read asks for ``Strong``: it waits until the query nodes hold every write acknowledged
before it began, whichever process wrote it. A view is not a snapshot: Milvus has had no reads at a past
time since 2.3, so each call of a view reads the collection as it is then; one search's hits are read with
their scores (or, for a deep fused list, by id right after: a document deleted in between raises
:class:`DocumentGoneError`). A batch is one Milvus request, visible to readers entirely or not at all.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simsearch.collection.delta import WriteResult
from simsearch.collection.embedded import ReadOnlyError
from simsearch.collection.filters import And, Condition, Filter, Node, Not, Or, flatten, is_scalar, kind_of
from simsearch.data.corpus import Document
from simsearch.index.manifest import CurInfo, FusionInfo, ModelInfo
from simsearch.search.fusion import DEFAULT_FUSION, Fusion
from simsearch.search.types import ModeUnavailableError, Ranked

FORMAT_VERSION = 1
META_SUFFIX = "__simsearch"
ID_BYTES = 4096  # a document id of up to 4 KB of UTF-8 (the API allows 512 characters)
TEXT_BYTES = 65_535  # Milvus's VARCHAR limit: longer documents are refused, not cut
JSON_BYTES = 65_536
TOP_K_MAX = 16_384  # Milvus's limit on one search's results
FETCH_INLINE = 128  # lists up to this long bring their documents with the search; deeper ones (fusion) ids only
MAX_EFFORT = 32.0
DOC_FIELDS = ["title", "content", "metadata"]
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
IndexType = Literal["FLAT", "IVF_FLAT", "AUTOINDEX"]  # what milvus-lite builds (it refuses HNSW)


# -- filters ------------------------------------------------------------------------------------------
# A filter becomes an expression over two JSON columns made from the flattened metadata at write time:
# ``meta_values`` (numbers and booleans as they are, strings hex-encoded) and ``meta_kinds`` (b, n, s, or o
# for null and lists), keyed by the hex of the dotted field name. Hex makes every literal safe (milvus-lite's
# parser takes no escapes and no templates) and keeps the order of strings (UTF-8 bytes sort as code points,
# and so do their hex digits); a dotted key matches nested and dotted metadata alike, as Filter.matches does.
# milvus-lite 2.5.1 has no ``not`` and no ``exists``: negations are pushed down to the conditions, where
# ``!=`` already means what Mongo's $ne means (a missing field or another type is "not equal"), and
# presence is a test of the kind column. Checked against Filter.matches in tests/test_milvus.py.
Expr = str | bool  # True: every document; False: none
TRUE_EXPR: Expr = True
FALSE_EXPR: Expr = False
KINDS = ("b", "n", "o", "s")
_SYMBOL = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OPPOSITE = {"$eq": "$ne", "$ne": "$eq", "$gt": "$lte", "$gte": "$lt", "$lt": "$gte", "$lte": "$gt"}


def _hex(text: str) -> str:
    return text.encode("utf-8").hex()


def filter_columns(metadata: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """``meta_values`` and ``meta_kinds`` of one document's metadata."""
    values: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for name, value in flatten(metadata).items():
        key = _hex(name)
        if is_scalar(value):
            kinds[key] = kind_of(value)[0]
            values[key] = _hex(value) if isinstance(value, str) else value
        else:
            kinds[key] = "o"
    return values, kinds


def _tree(parts: list[str], op: str) -> str:
    # pairs in parentheses, a balanced tree: milvus-lite fails on a flat chain of more than a few dozen
    while len(parts) > 1:
        parts = [f"({a} {op} {b})" for a, b in zip(parts[::2], parts[1::2], strict=False)] + (
            [parts[-1]] if len(parts) % 2 else []
        )
    return parts[0]


def all_of(parts: Sequence[Expr]) -> Expr:
    if any(p is False for p in parts):
        return False
    kept = [str(p) for p in parts if p is not True]
    return _tree(kept, "and") if kept else True


def any_of(parts: Sequence[Expr]) -> Expr:
    if any(p is True for p in parts):
        return True
    kept = [str(p) for p in parts if p is not False]
    return _tree(kept, "or") if kept else False


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return f'"{_hex(value)}"'


def milvus_expression(flt: Filter | None) -> Expr:
    """``flt`` as a Milvus boolean expression over the filter columns (``True`` without a filter)."""
    return True if flt is None else _walk(flt.root, True)


def _walk(node: Node, positive: bool) -> Expr:
    if isinstance(node, And):
        return (all_of if positive else any_of)([_walk(p, positive) for p in node.parts])
    if isinstance(node, Or):
        return (any_of if positive else all_of)([_walk(p, positive) for p in node.parts])
    if isinstance(node, Not):
        return _walk(node.part, not positive)
    return _condition(node, positive)


def _condition(c: Condition, positive: bool) -> Expr:
    key = _hex(c.field)
    value, kind = f'meta_values["{key}"]', f'meta_kinds["{key}"]'
    if c.op == "$exists":
        return f"{kind} {'in' if c.value == positive else 'not in'} {json.dumps(list(KINDS))}"
    if c.op in ("$eq", "$ne"):
        return f"{value} {_SYMBOL[c.op if positive else _OPPOSITE[c.op]]} {_literal(c.value)}"
    if c.op in ("$in", "$nin"):
        # one list per type (milvus-lite refuses mixed lists; ints and floats compare as numbers)
        groups: dict[type, list[str]] = {}
        for v in c.value:
            groups.setdefault(type(v), []).append(_literal(v))
        lists = [f"[{', '.join(dict.fromkeys(items))}]" for items in groups.values()]
        if (c.op == "$in") == positive:
            return any_of([f"{value} in {items}" for items in lists])
        return all_of([f"{value} not in {items}" for items in lists])
    letter = kind_of(c.value)[0]  # an order: numbers with numbers, strings with strings
    if positive:
        return _order(value, kind, c.op, c.value)
    # not (same kind and x op v)  =  another kind (or none), or the same kind in the opposite order
    return any_of([f'{kind} != "{letter}"', _order(value, kind, _OPPOSITE[c.op], c.value)])


def _order(value: str, kind: str, op: str, operand: Any) -> Expr:
    if operand == "" and isinstance(operand, str):  # milvus-lite fails on `< ""`: the empty string is the least
        empty: dict[str, Expr] = {
            "$gt": f'{value} > ""',
            "$gte": f'{kind} == "s"',
            "$lt": False,
            "$lte": f'{value} == ""',
        }
        return empty[op]
    return f"{value} {_SYMBOL[op]} {_literal(operand)}"


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
    cur: CurInfo | None = None
    source: dict[str, Any] = Field(default_factory=dict, description="Where the documents came from.")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


@dataclass
class CurData:
    """The CUR arrays a ``cur`` search needs besides each document's column of E."""

    anchor_ids: list[str | None]  # None: an anchor no longer in the collection (its text still defines E)
    anchor_texts: list[str]
    anchor_queries: list[str]  # a new document's column is U · CE(anchor queries × document)
    U: np.ndarray  # (k_i, k_q)


def pk(doc_id: str) -> str:
    return doc_id.encode("utf-8").hex()


def key_of(doc_id: str) -> int:
    return int.from_bytes(b"\x01" + doc_id.encode("utf-8"), "big")


def id_of_key(key: int) -> str | None:
    """The document id a key stands for (``None`` for -1, an absent CUR anchor)."""
    if key < 256:
        return None
    raw = key.to_bytes((key.bit_length() + 7) // 8, "big")
    return raw[1:].decode("utf-8") if raw[0] == 1 else None


def doc_id_of(key: str) -> str:
    return bytes.fromhex(key).decode("utf-8")


def content_of(doc: Document) -> str:
    """Title and text in one field (BM25 reads one); the text is recovered exactly by :func:`document_of`."""
    return f"{doc.title} {doc.text}" if doc.title else doc.text


def document_of(key: str, entity: dict[str, Any]) -> Document:
    title, content = entity["title"], entity["content"]
    return Document(
        id=doc_id_of(key),
        text=content[len(title) + 1 :] if title else content,
        title=title,
        metadata=entity["metadata"] or None,
    )


def _npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_npy(text: str) -> np.ndarray:
    return np.asarray(np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False))


class MetaStore:
    """Text records beside a collection, in ``<name>__simsearch`` (key, text in chunks of at most 16,000
    characters: VARCHAR holds 64 KB). Milvus wants a vector field in every collection: a 2-d zero vector."""

    CHUNK = 16_000

    def __init__(self, client: Any, collection: str) -> None:
        self.client = client
        self.name = collection + META_SUFFIX

    def create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description="simsearch")
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("value", DataType.VARCHAR, max_length=65_535)
        schema.add_field("parts", DataType.INT64)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
        index = self.client.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        self.client.create_collection(self.name, schema=schema, index_params=index, consistency_level="Strong")

    def put(self, records: dict[str, str]) -> None:
        rows = []
        for key, text in records.items():
            chunks = [text[i : i + self.CHUNK] for i in range(0, len(text), self.CHUNK)] or [""]
            rows += [
                {"key": key if i == 0 else f"{key}#{i}", "value": c, "parts": len(chunks), "v": [0.0, 0.0]}
                for i, c in enumerate(chunks)
            ]
        self.client.upsert(self.name, rows)

    def get(self, key: str) -> str | None:
        rows = self.client.query(
            self.name, filter=f'key == "{key}"', output_fields=["value", "parts"], consistency_level="Strong"
        )
        if not rows:
            return None
        parts = int(rows[0]["parts"])
        if parts == 1:
            return str(rows[0]["value"])
        rest = [f"{key}#{i}" for i in range(1, parts)]
        found = self.client.query(
            self.name, filter=f"key in {json.dumps(rest)}", output_fields=["value"], consistency_level="Strong"
        )
        by_key = {r["key"]: r["value"] for r in found}
        return str(rows[0]["value"]) + "".join(by_key[k] for k in rest)


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
    schema.add_field("content", DataType.VARCHAR, max_length=TEXT_BYTES, enable_analyzer=True, analyzer_params=ANALYZER)
    schema.add_field("metadata", DataType.JSON)  # milvus-lite refuses nullable fields: {} for none
    schema.add_field("meta_values", DataType.JSON)
    schema.add_field("meta_kinds", DataType.JSON)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=info.model.dimension)
    schema.add_function(Function("bm25", FunctionType.BM25, input_field_names=["content"], output_field_names="sparse"))
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
    return MilvusCollection(client, name, uri=uri)


class MilvusCollection:
    """A Milvus collection behind the collection interface (the module docstring says how)."""

    backend = "milvus"

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        uri: str,
        writable: bool = True,
        consistency: str = "Strong",
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.owns_client = owns_client
        self.name = name
        self.uri = uri
        self.writable = writable
        self.consistency = consistency
        if not client.has_collection(name):
            raise MilvusCollectionError(f"Milvus collection {name!r} does not exist")
        self.meta = MetaStore(client, name)
        raw = self.meta.get("info") if client.has_collection(self.meta.name) else None
        if raw is None:
            raise MilvusCollectionError(f"Milvus collection {name!r} was not made by simsearch (no {self.meta.name})")
        self.info = MilvusInfo.model_validate_json(raw)
        if self.info.format_version != FORMAT_VERSION:
            raise MilvusCollectionError(f"Milvus collection {name!r} has format {self.info.format_version}")
        described = client.describe_collection(name)
        self.schema_model = json.loads(described.get("description") or "{}").get("model", {})
        fields = {f["name"]: f for f in described["fields"]}
        self.dimension = int(fields["vector"]["params"]["dim"])
        self.has_cur = "cur" in fields
        self.cur_dimension = int(fields["cur"]["params"]["dim"]) if self.has_cur else 0
        self.cur: CurData | None = self._read_cur() if self.has_cur else None
        self._lock = threading.Lock()
        self._sequence = self._read_sequence()

    @property
    def model(self) -> ModelInfo:
        return self.info.model

    def _read_cur(self) -> CurData:
        def part(key: str) -> Any:
            raw = self.meta.get(key)
            if raw is None:
                raise MilvusCollectionError(f"Milvus collection {self.name!r} has no {key}")
            return raw

        return CurData(
            anchor_ids=json.loads(part("cur.anchor_ids")),
            anchor_texts=json.loads(part("cur.anchor_texts")),
            anchor_queries=json.loads(part("cur.anchor_queries")),
            U=_from_npy(part("cur.U")),
        )

    def check_model(self, sha256: str, dimension: int) -> None:
        """Refuse a model other than the one whose vectors the collection holds."""
        held = self.schema_model.get("sha256")
        if held != sha256 or self.dimension != dimension or self.info.model.sha256 != sha256:
            raise MilvusCollectionError(
                f"Milvus collection {self.name!r} holds {self.dimension}-d vectors of model "
                f"{str(held)[:12]} ({self.info.model.path}), but the configured model is {sha256[:12]} "
                f"({dimension}-d): copy the collection again with this model, or configure that one"
            )

    # -- reading -------------------------------------------------------------------------------------
    def view(self) -> MilvusView:
        """A view for one search: it keeps the documents its searches read (keys mean the same in every view)."""
        return MilvusView(self)

    @property
    def sequence(self) -> int:
        return self._sequence

    def _read_sequence(self) -> int:
        return int(self.meta.get("sequence") or 0)

    def uncompacted(self) -> int:
        """Always 0: Milvus merges its segments itself, and the service never compacts a Milvus collection."""
        return 0

    def count(self, expr: Expr = True) -> int:
        if expr is False:
            return 0
        rows = self.client.query(
            self.name,
            filter="" if expr is True else str(expr),
            output_fields=["count(*)"],
            consistency_level=self.consistency,
        )
        return int(rows[0]["count(*)"])

    def present(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are in the collection now."""
        found: set[str] = set()
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), 1000):
            keys = [pk(i) for i in wanted[start : start + 1000]]
            rows = self.client.query(
                self.name, filter=f"id in {json.dumps(keys)}", output_fields=["id"], consistency_level=self.consistency
            )
            found.update(doc_id_of(r["id"]) for r in rows)
        return found

    # -- writing -------------------------------------------------------------------------------------
    def rows(self, docs: Sequence[Document], vectors: np.ndarray, cur: np.ndarray | None = None) -> list[dict]:
        """Milvus rows for ``docs``; every size and value is checked first, so a refused batch writes nothing.
        ``cur``: their columns of E (a bulk load from a build); without them they have none yet."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(docs) != len(vectors):
            raise ValueError(f"{len(docs)} documents and {len(vectors)} vectors")
        rows = []
        for i, (doc, vec) in enumerate(zip(docs, vectors, strict=True)):
            if vec.shape != (self.dimension,):
                raise ValueError(f"vector of shape {vec.shape}; the collection holds {self.dimension}-d vectors")
            if not np.isfinite(vec).all():
                raise ValueError(f"document {doc.id!r}: its vector is not finite")
            content = content_of(doc)
            if len(doc.id.encode("utf-8")) > ID_BYTES:
                raise ValueError(f"document id {doc.id[:40]!r}...: longer than {ID_BYTES} bytes")
            if len(content.encode("utf-8")) > TEXT_BYTES:
                raise ValueError(f"document {doc.id!r}: title and text are longer than Milvus's {TEXT_BYTES} bytes")
            try:
                size = len(json.dumps(doc.metadata or {}, allow_nan=False, ensure_ascii=False).encode("utf-8"))
            except ValueError:
                raise ValueError(f"document {doc.id!r}: metadata holds a number JSON cannot (NaN, infinity)") from None
            if size > JSON_BYTES // 2:  # the filter columns hold the strings again, hex-encoded
                raise ValueError(f"document {doc.id!r}: metadata of {size} bytes; at most {JSON_BYTES // 2} here")
            values, kinds = filter_columns(doc.metadata)
            row = {
                "id": pk(doc.id),
                "title": doc.title,
                "content": content,
                "metadata": doc.metadata or {},
                "meta_values": values,
                "meta_kinds": kinds,
                "vector": vec.tolist(),
            }
            if self.has_cur:  # no column yet: zeros, never searched (has_cur is false)
                column = np.zeros(self.cur_dimension, np.float32) if cur is None else np.asarray(cur[i], np.float32)
                row["cur"] = column.tolist()
                row["has_cur"] = cur is not None
            rows.append(row)
        return rows

    def upsert(self, docs: Sequence[Document], vectors: np.ndarray) -> WriteResult:
        """Insert or replace ``docs`` (one vector each) as one Milvus request: all or nothing to readers."""
        self._check_writable()
        rows = self.rows(docs, vectors)
        if not rows:
            return WriteResult(self.sequence)
        with self._lock:
            seen = self.present([d.id for d in docs])
            inserted: list[str] = []
            replaced: list[str] = []
            for doc in docs:  # as the embedded backend reports a batch: an id twice is inserted, then replaced
                (replaced if doc.id in seen else inserted).append(doc.id)
                seen.add(doc.id)
            last = {row["id"]: row for row in rows}  # an id twice in one request: the last version only
            self.client.upsert(self.name, list(last.values()))
            return WriteResult(self._next_sequence(), inserted=inserted, replaced=replaced)

    def load(self, docs: Sequence[Document], vectors: np.ndarray, cur: np.ndarray | None = None) -> None:
        """Write a batch of a bulk load (a copy, an encoding job): an upsert, so a batch written twice by a
        resumed job is written once; no existence check and no write sequence."""
        self._check_writable()
        rows = self.rows(docs, vectors, cur)
        if rows:
            self.client.upsert(self.name, rows)

    def delete(self, ids: Sequence[str]) -> WriteResult:
        self._check_writable()
        if not ids:
            return WriteResult(self.sequence)
        with self._lock:
            present = self.present(ids)
            deleted: list[str] = []
            not_found: list[str] = []
            for doc_id in ids:
                (deleted if doc_id in present else not_found).append(doc_id)
                present.discard(doc_id)
            if deleted:
                self.client.delete(self.name, filter=f"id in {json.dumps([pk(i) for i in deleted])}")
            return WriteResult(self._next_sequence(), deleted=deleted, not_found=not_found)

    def _next_sequence(self) -> int:
        # read-then-write: exact with one writing process (milvus-lite always has one), see docs/scale.md
        seq = max(self._read_sequence(), self._sequence) + 1
        self.meta.put({"sequence": str(seq)})
        self._sequence = seq
        return seq

    def _check_writable(self) -> None:
        if not self.writable:
            raise ReadOnlyError(f"collection {self.name!r} is open read-only here: send writes to the writer")

    def refresh(self) -> int:
        """Reads are live, so there is nothing to apply: return how many batches others wrote since."""
        seq = self._read_sequence()
        others, self._sequence = max(0, seq - self._sequence), max(seq, self._sequence)
        return others

    def set_index_info(self, index: MilvusIndexInfo) -> None:
        """Record the search parameter tuned after a load (and the recall it reached)."""
        self.info = self.info.model_copy(update={"index": index})
        self.meta.put({"info": self.info.model_dump_json()})

    def flush(self, *, timeout_s: float = 3600.0) -> int:
        """Seal what was written and wait while Milvus builds the vector index (after a bulk load); return
        the rows it indexed. Segments not indexed (yet) are searched exactly: milvus-lite leaves small
        collections so, and a cluster builds asynchronously."""
        self.client.flush(self.name)
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.client.describe_index(self.name, "vector")
            if int(state.get("pending_index_rows") or 0) == 0 or time.monotonic() > deadline:
                return int(state.get("indexed_rows") or 0)
            time.sleep(1.0)

    @property
    def build_id(self) -> str:
        """The embedded build the documents were copied from (training.to_milvus), or when the collection was made."""
        return str(self.info.source.get("build_id") or self.info.created_at.isoformat(timespec="seconds"))

    def describe(self) -> dict[str, Any]:
        live: dict[str, Any] = {"sequence": self.sequence, "documents": self.count(), "uncompacted": 0}
        if self.has_cur:
            live["without_cur"] = self.count("has_cur == false")
        return {"backend": self.backend, "uri": self.uri, **self.info.model_dump(mode="json"), "live": live}

    def close(self) -> None:
        """Close the client if this collection was given it to own (as open_collection does)."""
        if self.owns_client:
            self.client.close()


class MilvusView:
    """The search pipeline's view (simsearch.search.view.SearchView) over a Milvus collection."""

    def __init__(self, collection: MilvusCollection) -> None:
        self.c = collection
        self._docs: dict[int, Document] = {}  # documents read with a search, as scored
        self._counts: dict[str, int] = {}
        self._anchor_keys: list[int] | None = None
        self.sequence = collection.sequence

    @property
    def name(self) -> str:
        return self.c.name

    @property
    def count(self) -> int:
        return self._count(True)

    def _count(self, expr: Expr) -> int:
        text = str(expr)
        if text not in self._counts:
            self._counts[text] = self.c.count(expr)
        return self._counts[text]

    # -- retrieval -----------------------------------------------------------------------------------
    def _search(self, field: str, data: Any, k: int, expr: Expr, params: dict[str, Any]) -> Ranked:
        if expr is False or k < 1:
            return []
        limit = min(k, TOP_K_MAX)
        fields = DOC_FIELDS if limit <= FETCH_INLINE else []
        hits = self.c.client.search(
            self.c.name,
            data=[data],
            anns_field=field,
            limit=limit,
            filter="" if expr is True else str(expr),
            output_fields=fields,
            search_params=params,
            consistency_level=self.c.consistency,
        )[0]
        out: Ranked = []
        for hit in hits:
            key = key_of(doc_id_of(hit["id"]))
            if fields:
                self._docs[key] = document_of(hit["id"], hit["entity"])
            out.append((key, float(hit["distance"])))
        return out

    def _dense_params(self, expr: Expr) -> dict[str, Any]:
        index = self.c.info.index
        if index.type != "IVF_FLAT" or not index.nlist:
            return {"metric_type": "IP"}
        nprobe = index.nprobe or 16
        if expr is not True:  # a restricted search probes more lists to find k allowed ones, as the embedded planner
            total, allowed = self.count, self._count(expr)
            nprobe = math.ceil(nprobe * min(MAX_EFFORT, total / max(allowed, 1)))
        return {"metric_type": "IP", "params": {"nprobe": min(index.nlist, nprobe)}}

    def dense(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        expr = milvus_expression(flt)
        return self._search("vector", np.asarray(vector, np.float32).tolist(), k, expr, self._dense_params(expr))

    def lexical(self, text: str, k: int, flt: Filter | None = None) -> Ranked:
        if not text.strip():  # nothing to match (Milvus answers an empty query with nothing, too)
            return []
        return self._search("sparse", text, k, milvus_expression(flt), {"metric_type": "BM25"})

    def cur_anchors(self) -> tuple[list[int], list[str]]:
        cur = self.c.cur
        if cur is None:
            raise ModeUnavailableError(
                f"Milvus collection {self.name!r} has no CUR arrays: fit them on the embedded build "
                "(`python -m training.fit_cur`), then copy it again (`python -m training.to_milvus`)"
            )
        if self._anchor_keys is None:  # an anchor replaced since the fit is no longer the item E was made from
            live = [i for i in cur.anchor_ids if i is not None]
            keys = [pk(i) for i in live]
            rows = self.c.client.query(
                self.c.name,
                filter=f"id in {json.dumps(keys)} and has_cur == true",
                output_fields=["id"],
                consistency_level=self.c.consistency,
            )
            valid = {doc_id_of(r["id"]) for r in rows}
            self._anchor_keys = [key_of(i) if i is not None and i in valid else -1 for i in cur.anchor_ids]
        return list(self._anchor_keys), cur.anchor_texts

    def cur(self, anchor_scores: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        expr = all_of(["has_cur == true", milvus_expression(flt)])
        data = np.asarray(anchor_scores, dtype=np.float32).tolist()
        return self._search("cur", data, k, expr, {"metric_type": "IP"})

    def cur_missing(self) -> bool:
        """Documents written since the copy have no column of E (U · CE(anchor queries × document) is not
        computed on the Milvus path): ``cur`` search finds them through the dense retriever."""
        return self.c.has_cur and self._count("has_cur == false") > 0

    def dense_delta(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        if not self.c.has_cur:
            return []
        expr = all_of(["has_cur == false", milvus_expression(flt)])
        return self._search("vector", np.asarray(vector, np.float32).tolist(), k, expr, self._dense_params(expr))

    def allowed(self, keys: Sequence[int], flt: Filter | None) -> list[bool]:
        ids = [i for i in (id_of_key(k) for k in keys) if i is not None]
        expr = all_of([f"id in {json.dumps([pk(i) for i in ids])}", milvus_expression(flt)]) if ids else FALSE_EXPR
        found = set()
        if expr is not False:
            rows = self.c.client.query(
                self.c.name, filter=str(expr), output_fields=["id"], consistency_level=self.c.consistency
            )
            found = {doc_id_of(r["id"]) for r in rows}
        return [id_of_key(k) in found for k in keys]

    def default_fusion(self) -> Fusion:
        info = self.c.info.fusion
        if info is None:
            return DEFAULT_FUSION
        return Fusion(method=info.method, alpha=info.alpha if info.alpha is not None else 0.5, rrf_k=info.rrf_k)  # type: ignore[arg-type]

    # -- documents -----------------------------------------------------------------------------------
    def _fetch(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        found: dict[str, Document] = {}
        for start in range(0, len(doc_ids), 1000):
            keys = [pk(i) for i in doc_ids[start : start + 1000]]
            rows = self.c.client.query(
                self.c.name,
                filter=f"id in {json.dumps(keys)}",
                output_fields=DOC_FIELDS,
                consistency_level=self.c.consistency,
            )
            found.update({doc_id_of(r["id"]): document_of(r["id"], r) for r in rows})
        return found

    def documents(self, keys: Sequence[int]) -> list[Document]:
        missing = {k: id_of_key(k) for k in keys if k not in self._docs}
        if missing:
            if None in missing.values():
                raise KeyError(f"keys that stand for no document: {[k for k, i in missing.items() if i is None][:5]}")
            fetched = self._fetch([i for i in missing.values() if i is not None])
            gone = [i for i in missing.values() if i not in fetched]
            if gone:
                raise DocumentGoneError(f"document {gone[0]!r} was deleted while this search ran: search again")
            for key, doc_id in missing.items():
                self._docs[key] = fetched[str(doc_id)]
        return [self._docs[k] for k in keys]

    def texts(self, keys: Sequence[int]) -> list[str]:
        return [d.content() for d in self.documents(keys)]

    def get(self, doc_id: str) -> Document | None:
        return self._fetch([doc_id]).get(doc_id)
