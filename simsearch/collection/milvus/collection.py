"""The Milvus collection behind the collection interface (simsearch.collection.base): writes as single
Milvus requests, the write sequence in the companion collection, counts, and the model check."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from simsearch.api.spec import CollectionSpec
from simsearch.collection.base import CompactionError, Score, Spans
from simsearch.collection.delta import WriteResult
from simsearch.collection.embedded import ReadOnlyError
from simsearch.collection.milvus.codec import EMPTY_MARK, content_of, doc_id_of, lexical_text, pk
from simsearch.collection.milvus.companion import MetaStore, _from_npy
from simsearch.collection.milvus.expressions import Expr, all_of, any_of, filter_columns
from simsearch.collection.milvus.schema import (
    FORMAT_VERSION,
    ID_BYTES,
    JSON_BYTES,
    TEXT_BYTES,
    CurData,
    MilvusCollectionError,
    MilvusIndexInfo,
    MilvusInfo,
)
from simsearch.collection.milvus.view import MilvusView
from simsearch.data.corpus import Document
from simsearch.index.manifest import CurInfo, FusionInfo, ModelInfo, RerankInfo
from simsearch.models.files import display_name


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
        api_name: str | None = None,
    ) -> None:
        self.client = client
        self.owns_client = owns_client
        self.milvus_name = name  # what Milvus calls it
        self.name = api_name or name  # what the API and the messages call it
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
        self.lexical_field = "lexical" if "lexical" in fields else "content"
        self.passages = "doc" in fields  # a row per passage (simsearch.text.passages), the document's id in `doc`
        self.analyser_name = self.info.spec.analyser if self.info.spec is not None else "english"
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
        if self.passages:  # documents: each counted by its first passage
            expr = all_of([expr, "ord == 0"])
        rows = self.client.query(
            self.milvus_name,
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
            expr = f"doc in {json.dumps(keys)} and ord == 0" if self.passages else f"id in {json.dumps(keys)}"
            field = "doc" if self.passages else "id"
            rows = self.client.query(
                self.milvus_name, filter=expr, output_fields=[field], consistency_level=self.consistency
            )
            found.update(doc_id_of(r[field]) for r in rows)
        return found

    # -- writing -------------------------------------------------------------------------------------
    def rows(
        self,
        docs: Sequence[Document],
        vectors: np.ndarray,
        cur: np.ndarray | None = None,
        spans: Spans | None = None,
    ) -> list[dict]:
        """Milvus rows for ``docs``; every size and value is checked first, so a refused batch writes nothing.
        ``cur``: their columns of E (a bulk load from a build); without them they have none yet. In a
        collection of passages, ``spans`` are each document's passages (their vectors in order, flattened)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.passages:
            return self._passage_rows(docs, vectors, spans)
        return self._plain_rows(docs, vectors, cur)

    def _plain_rows(self, docs: Sequence[Document], vectors: np.ndarray, cur: np.ndarray | None = None) -> list[dict]:
        """A row per document (its vector, text, filter columns and, with CUR arrays, its column of E)."""
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
            if doc.metadata == {}:
                kinds[EMPTY_MARK] = "e"
            row = {
                "id": pk(doc.id),
                "title": doc.title,
                "content": content,
                "metadata": doc.metadata or {},
                "meta_values": values,
                "meta_kinds": kinds,
                "vector": vec.tolist(),
            }
            if self.lexical_field != "content":
                terms = lexical_text(content, self.analyser_name)
                if len(terms.encode("utf-8")) > TEXT_BYTES:
                    raise ValueError(
                        f"document {doc.id!r}: its analysed terms are longer than Milvus's {TEXT_BYTES} bytes"
                    )
                row[self.lexical_field] = terms
            if self.has_cur:  # no column yet: zeros, never searched (has_cur is false)
                column = np.zeros(self.cur_dimension, np.float32) if cur is None else np.asarray(cur[i], np.float32)
                row["cur"] = column.tolist()
                row["has_cur"] = cur is not None
            rows.append(row)
        return rows

    def _passage_rows(self, docs: Sequence[Document], vectors: np.ndarray, spans: Spans | None) -> list[dict]:
        """A row per passage: the document's text, title and BM25 terms on its first passage only (so BM25
        counts each document once), its metadata and filter columns on every passage (filters apply per
        document, whichever passage a search meets)."""
        spans = spans if spans is not None else [[(0, len(d.text))] for d in docs]
        counts = [len(s) for s in spans]
        if len(spans) != len(docs) or sum(counts) != len(vectors):
            raise ValueError(f"{len(docs)} documents of {sum(counts)} passages and {len(vectors)} vectors")
        firsts = np.cumsum([0, *counts[:-1]])
        heads = self._plain_rows(docs, vectors[firsts])  # every check, once per document
        rows = []
        for head, doc, doc_spans, first in zip(heads, docs, spans, firsts, strict=True):
            for ord_, (start, end) in enumerate(doc_spans):
                row = dict(head) if ord_ == 0 else {**head, "title": "", "content": "", "lexical": ""}
                vec = vectors[first + ord_]
                if not np.isfinite(vec).all():
                    raise ValueError(f"document {doc.id!r}: a passage's vector is not finite")
                row.update(
                    id=f"{head['id']}:{ord_}",
                    doc=head["id"],
                    ord=ord_,
                    pstart=int(start),
                    pend=int(end),
                    vector=vec.tolist(),
                )
                rows.append(row)
        return rows

    def upsert(self, docs: Sequence[Document], vectors: np.ndarray, spans: Spans | None = None) -> WriteResult:
        """Insert or replace ``docs`` as one Milvus request (a collection of passages: the passages a document
        no longer has are deleted first, so a reader sees its old version, cut short, or its new one)."""
        self._check_writable()
        if not self.passages and spans is not None and any(len(s) != 1 for s in spans):
            raise ValueError("this Milvus collection holds one vector per document: it does not split passages")
        rows = self.rows(docs, vectors, spans=spans)
        if not rows:
            return WriteResult(self.sequence)
        with self._lock:
            if self.passages:
                self._drop_passages_beyond(docs, spans)
            seen = self.present([d.id for d in docs])
            inserted: list[str] = []
            replaced: list[str] = []
            for doc in docs:  # as the embedded backend reports a batch: an id twice is inserted, then replaced
                (replaced if doc.id in seen else inserted).append(doc.id)
                seen.add(doc.id)
            last = {row["id"]: row for row in rows}  # an id twice in one request: the last version only
            self.client.upsert(self.milvus_name, list(last.values()))
            return WriteResult(self._next_sequence(), inserted=inserted, replaced=replaced)

    def _drop_passages_beyond(self, docs: Sequence[Document], spans: Spans | None) -> None:
        counts = [len(s) for s in spans] if spans is not None else [1] * len(docs)
        last = dict(zip((d.id for d in docs), counts, strict=True))  # an id twice: its last version
        stale = any_of([f'(doc == "{pk(i)}" and ord >= {n})' for i, n in last.items()])
        if stale is not False:
            self.client.delete(self.milvus_name, filter=str(stale))

    def load(
        self,
        docs: Sequence[Document],
        vectors: np.ndarray,
        cur: np.ndarray | None = None,
        *,
        spans: Spans | None = None,
    ) -> None:
        """Write a batch of a bulk load (a copy, an encoding job): an upsert, so a batch written twice by a
        resumed job is written once; no existence check and no write sequence. ``spans``: each document's
        passages, in a collection of passages."""
        self._check_writable()
        rows = self.rows(docs, vectors, cur, spans=spans)
        if rows:
            self.client.upsert(self.milvus_name, rows)

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
                field = "doc" if self.passages else "id"  # every passage of the document
                self.client.delete(self.milvus_name, filter=f"{field} in {json.dumps([pk(i) for i in deleted])}")
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

    def pending(self) -> bool:
        return True  # the sequence lives in Milvus: only reading it tells

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
        self.client.flush(self.milvus_name)
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.client.describe_index(self.milvus_name, "vector")
            if int(state.get("pending_index_rows") or 0) == 0 or time.monotonic() > deadline:
                return int(state.get("indexed_rows") or 0)
            time.sleep(1.0)

    @property
    def build_id(self) -> str:
        """The embedded build the documents were copied from (training.to_milvus), or when the collection was made."""
        return str(self.info.source.get("build_id") or self.info.created_at.isoformat(timespec="seconds"))

    @property
    def spec(self) -> CollectionSpec | None:
        return self.info.spec

    @property
    def fusion(self) -> FusionInfo | None:
        return self.info.fusion

    @property
    def rerank(self) -> RerankInfo | None:
        return self.info.rerank

    @property
    def cur_info(self) -> CurInfo | None:
        return self.info.cur

    def compact(self, cross_score: Score | None, cross_sha256: str | None) -> bool:
        raise CompactionError("the milvus store merges its segments itself: there is nothing to compact here")

    def record_fusion(self, info: FusionInfo) -> None:
        self._check_writable()
        self.info = self.info.model_copy(update={"fusion": info})
        self.meta.put({"info": self.info.model_dump_json()})

    def stale(self) -> bool:
        return False  # reads are live: there is no build to swap to

    def describe(self) -> dict[str, Any]:
        info = self.info.model_dump(mode="json")
        info["model"]["path"] = display_name(self.info.model.path)
        for part in ("cur", "rerank"):
            if info.get(part) and info[part].get("cross_encoder"):
                info[part]["cross_encoder"]["path"] = display_name(info[part]["cross_encoder"]["path"])
        return {"backend": self.backend, "folder": self.milvus_name, "uri": self.uri, **info}

    def close(self) -> None:
        """Close the client if this collection was given it to own (the service's store shares one client)."""
        if self.owns_client:
            self.client.close()
