"""What one search reads from a Milvus collection (simsearch.search.view.SearchView): searches with their
documents, filters as expressions, CUR columns, and documents read by id."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from simsearch.collection.filters import Filter
from simsearch.collection.milvus.codec import KeyTable, doc_id_of, document_of, lexical_text, pk
from simsearch.collection.milvus.expressions import FALSE_EXPR, Expr, all_of, milvus_expression
from simsearch.collection.milvus.schema import DOC_FIELDS, TOP_K_MAX
from simsearch.data.corpus import Document
from simsearch.search.fusion import DEFAULT_FUSION, Fusion, fusion_from
from simsearch.search.types import ModeUnavailableError, PassageHit, Ranked
from simsearch.search.view import whole_texts
from simsearch.text.passages import passage_input

if TYPE_CHECKING:
    from simsearch.collection.milvus.collection import MilvusCollection

FETCH_INLINE = 128  # lists up to this long bring their documents with the search; deeper ones (fusion) ids only
MAX_EFFORT = 32.0


class MilvusView:
    """The search pipeline's view (simsearch.search.view.SearchView) over a Milvus collection."""

    def __init__(self, collection: MilvusCollection) -> None:
        self.c = collection
        self._docs: dict[int, Document | None] = {}  # documents read with a search, as scored
        self._counts: dict[str, int] = {}
        self._anchor_keys: list[int] | None = None
        self._best: dict[int, PassageHit] = {}  # each document's best passage, as a dense search found it
        self.keys = KeyTable()  # ids <-> the pipeline's keys, for this view only
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
        passages = self.c.passages
        # a collection of passages: one hit per document (its best passage, grouped by Milvus), documents read
        # from their first passage afterwards
        fields = ["doc", "ord", "pstart", "pend"] if passages else (DOC_FIELDS if limit <= FETCH_INLINE else [])
        extra: dict[str, Any] = {"group_by_field": "doc"} if passages and field != "sparse" else {}
        hits = self.c.client.search(
            self.c.milvus_name,
            data=[data],
            anns_field=field,
            limit=limit,
            filter="" if expr is True else str(expr),
            output_fields=fields,
            search_params=params,
            consistency_level=self.c.consistency,
            **extra,
        )[0]
        out: Ranked = []
        for hit in hits:
            entity = hit["entity"]
            if passages:
                key = self.keys.key(doc_id_of(entity["doc"]))
                if field == "vector":
                    self._best[key] = PassageHit(int(entity["ord"]), int(entity["pstart"]), int(entity["pend"]))
            else:
                key = self.keys.key(doc_id_of(hit["id"]))
                if fields:
                    self._docs[key] = document_of(hit["id"], entity)
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
        if self.c.lexical_field != "content":  # the query prepared as the documents were
            text = lexical_text(text, self.c.analyser_name, query=True)
            if not text:
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
                self.c.milvus_name,
                filter=f"id in {json.dumps(keys)} and has_cur == true",
                output_fields=["id"],
                consistency_level=self.c.consistency,
            )
            valid = {doc_id_of(r["id"]) for r in rows}
            self._anchor_keys = [self.keys.key(i) if i is not None and i in valid else -1 for i in cur.anchor_ids]
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
        ids = [i for i in (self.keys.id(k) for k in keys) if i is not None]
        expr = all_of([f"id in {json.dumps([pk(i) for i in ids])}", milvus_expression(flt)]) if ids else FALSE_EXPR
        found = set()
        if expr is not False:
            rows = self.c.client.query(
                self.c.milvus_name, filter=str(expr), output_fields=["id"], consistency_level=self.c.consistency
            )
            found = {doc_id_of(r["id"]) for r in rows}
        return [self.keys.id(k) in found for k in keys]

    def default_fusion(self) -> Fusion:
        info = self.c.info.fusion
        if info is None:
            return DEFAULT_FUSION
        return fusion_from(info)

    # -- documents -----------------------------------------------------------------------------------
    def _fetch(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        found: dict[str, Document] = {}
        passages = self.c.passages
        for start in range(0, len(doc_ids), 1000):
            keys = [pk(i) for i in doc_ids[start : start + 1000]]
            expr = f"doc in {json.dumps(keys)} and ord == 0" if passages else f"id in {json.dumps(keys)}"
            rows = self.c.client.query(
                self.c.milvus_name,
                filter=expr,
                output_fields=[*DOC_FIELDS, *(["doc"] if passages else [])],
                consistency_level=self.c.consistency,
            )
            for r in rows:
                key = r["doc"] if passages else r["id"]
                found[doc_id_of(key)] = document_of(key, r)
        return found

    def documents(self, keys: Sequence[int]) -> list[Document | None]:
        """The documents of ``keys``; ``None`` for one deleted since this view's search found it (Milvus
        reads live: the pipeline leaves it out of the hits, as a search started after the delete would)."""
        missing = {k: self.keys.id(k) for k in keys if k not in self._docs}
        if missing:
            if None in missing.values():
                raise KeyError(f"keys that stand for no document: {[k for k, i in missing.items() if i is None][:5]}")
            fetched = self._fetch([i for i in missing.values() if i is not None])
            for key, doc_id in missing.items():
                self._docs[key] = fetched.get(str(doc_id))
        return [self._docs[k] for k in keys]

    @property
    def has_passages(self) -> bool:
        return self.c.passages

    def best_passages(self, keys: Sequence[int], vector: np.ndarray | None, text: str) -> list[PassageHit]:
        """Each document's best passage: as the dense search found it, else by the query vector over its
        passages' vectors, else by the query's terms (the collection's analyser), else its first."""
        docs = self.documents(keys)
        if not self.c.passages:
            return whole_texts(docs)
        missing = [k for k in keys if k not in self._best]
        if missing:
            self._choose_passages(missing, vector, text)
        return [self._best.get(k, PassageHit(0, 0, len(d.text) if d else 0)) for k, d in zip(keys, docs, strict=True)]

    def _choose_passages(self, keys: Sequence[int], vector: np.ndarray | None, text: str) -> None:
        ids = {self.keys.id(k): k for k in keys}
        wanted = json.dumps([pk(i) for i in ids if i is not None])
        rows = self.c.client.query(
            self.c.milvus_name,
            filter=f"doc in {wanted}",
            output_fields=["doc", "ord", "pstart", "pend", *(["vector"] if vector is not None else [])],
            consistency_level=self.c.consistency,
        )
        docs = dict(zip(keys, self.documents(keys), strict=True))
        terms = set(lexical_text(text, self.c.analyser_name, query=True).split()) if vector is None else set()
        by_key: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            by_key.setdefault(ids[doc_id_of(r["doc"])], []).append(r)
        for key, own in by_key.items():
            own.sort(key=lambda r: int(r["ord"]))
            doc = docs[key]
            if vector is not None:
                best = max(own, key=lambda r: float(np.dot(r["vector"], vector)))
            elif terms and doc is not None:
                best = max(
                    own,
                    key=lambda r: len(
                        terms & set(lexical_text(doc.text[r["pstart"] : r["pend"]], self.c.analyser_name).split())
                    ),
                )
            else:
                best = own[0]
            self._best[key] = PassageHit(int(best["ord"]), int(best["pstart"]), int(best["pend"]))

    def candidate_texts(self, keys: Sequence[int], vector: np.ndarray | None, text: str) -> list[str]:
        if not self.c.passages:
            return self.texts(keys)
        docs = self.documents(keys)
        chosen = self.best_passages(keys, vector, text)
        return [passage_input(d, p.start, p.end) if d else "" for d, p in zip(docs, chosen, strict=True)]

    def texts(self, keys: Sequence[int]) -> list[str]:
        return [d.content() if d is not None else "" for d in self.documents(keys)]

    def get(self, doc_id: str) -> Document | None:
        return self._fetch([doc_id]).get(doc_id)
