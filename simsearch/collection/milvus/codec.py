"""Document ids in Milvus: the primary key (the id's UTF-8 bytes in hex: pymilvus 2.5 quotes ids into
expressions without escaping them), the one ``content`` field BM25 reads, and the small integer keys the
search pipeline works with (:class:`KeyTable`: one per view, so no key is ever wider than the pipeline's
int64 arrays, whatever the id's length).
"""

from __future__ import annotations

from typing import Any

from simsearch.data.corpus import Document

EMPTY_MARK = "-"  # a key of meta_kinds no field can have (theirs are hex): the metadata was {} rather than none


def lexical_text(text: str, analyser_name: str, *, query: bool = False) -> str:
    """What BM25 reads on Milvus for a collection of an analyser other than english: the very terms the
    embedded store's analyser makes (simsearch.text.analysers, in order, repeats kept), separated by spaces
    for Milvus's whitespace tokenizer; so both stores score BM25 on the same terms."""
    from simsearch.text.analysers import analyser

    chosen = analyser(analyser_name)
    terms = _pipeline(analyser_name).analyze(chosen.prepare(text))
    # a query's terms count once each, as the embedded store's term queries count them
    return " ".join(dict.fromkeys(terms) if query else terms)


_PIPELINES: dict[str, Any] = {}


def _pipeline(name: str) -> Any:
    from simsearch.text.analysers import analyser

    if name not in _PIPELINES:
        _PIPELINES[name] = analyser(name).tantivy()
    return _PIPELINES[name]


def pk(doc_id: str) -> str:
    return doc_id.encode("utf-8").hex()


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
        # milvus-lite has no nullable fields: no metadata is stored as {}, and an empty object is marked
        metadata={} if (entity.get("meta_kinds") or {}).get(EMPTY_MARK) else (entity["metadata"] or None),
    )


class KeyTable:
    """Document ids and the pipeline's integer keys, both ways, for the length of one view. Keys are
    handed out in the order ids are first seen (0, 1, 2, ...); -1 stands for no document (an absent CUR
    anchor). An id of any length gets a small key, so the pipeline's numpy fusion never overflows (a key
    made of the id's own bytes was wider than int64 for any id of 8 bytes or more)."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._ids: list[str] = []

    def key(self, doc_id: str) -> int:
        found = self._keys.get(doc_id)
        if found is None:
            found = self._keys[doc_id] = len(self._ids)
            self._ids.append(doc_id)
        return found

    def id(self, key: int) -> str | None:
        return self._ids[key] if 0 <= key < len(self._ids) else None
