"""The lexical (BM25) index of a collection, on tantivy: Lucene-style immutable segments, deletes by term,
commits that readers see atomically, BM25 with collection-wide statistics (k1 = 1.2, b = 0.75).

Chosen by measurement over SQLite FTS5 (bench/lexical_engines.py: the same nDCG@10 on SciFact, 68.59
against 68.74, at a thirtieth of the query time and a sixth of the size). Documents and queries go through
the collection's analyser (simsearch.text.analysers: english, chinese or standard).

Query text is data, never syntax: it goes through the same analyser and each distinct term becomes a
term query (any term may match; BM25 ranks), so quotes, ``*``, ``NEAR(``, ``OR`` or parentheses are words
or nothing, and a query of stop words only finds nothing instead of failing.

A build folder holds the index of its documents (keyed by vector position). A collection with writes
searches a private working copy (the build's segment files hard-linked, never modified) to which each
write batch adds and deletes documents in one commit; a :class:`LexicalSearcher` is a point-in-time
view, so a search sees a batch entirely or not at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.text.analysers import Analyser, analyser

KEY, BODY = "key", "body"
# term-set filters up to this many keys run inside tantivy; larger sets filter its results afterwards
MAX_KEY_SET = 50_000
HEAP_BYTES = 64_000_000
WORK_PREFIX = ".lexical-"


def _tantivy() -> Any:
    import tantivy

    return tantivy


def _schema(chosen: Analyser) -> Any:
    builder = _tantivy().SchemaBuilder()
    builder.add_unsigned_field(KEY, stored=True, indexed=True, fast=True)
    builder.add_text_field(BODY, stored=False, tokenizer_name=chosen.tokenizer_name, index_option="freq")
    return builder.build()


def _open(folder: Path, create: bool, chosen: Analyser) -> Any:
    t = _tantivy()
    if not create and not t.Index.exists(str(folder)):
        raise FileNotFoundError(f"no lexical index in {folder}")
    index = t.Index(_schema(chosen), path=str(folder), reuse=not create)
    index.register_tokenizer(chosen.tokenizer_name, chosen.tantivy())
    # the searchers are reloaded by hand after each commit: no thread per index watching its files (measured:
    # about 1 % of a core per 100 idle collections, bench/collections_many.py)
    index.config_reader(reload_policy="Manual")
    return index


def _document(key: int, text: str, chosen: Analyser) -> Any:
    doc = _tantivy().Document()
    doc.add_unsigned(KEY, int(key))
    doc.add_text(BODY, chosen.prepare(text))
    return doc


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


DESCRIPTIONS = {
    "english": "simple tokens, lower case, English stop words, English stemmer",
    "standard": "words of letters and digits, each CJK character alone, lower case",
    "chinese": "Chinese words by jieba (search mode) and single characters; other words as english",
}


def build_lexical(folder: Path, docs: Iterable[tuple[int, str]], analyser_name: str = "english") -> dict[str, Any]:
    """Index ``(key, text)`` pairs into a new ``folder`` with the named analyser; return what the manifest
    records."""
    started = time.perf_counter()
    chosen = analyser(analyser_name)
    folder.mkdir(parents=True, exist_ok=True)
    index = _open(folder, create=True, chosen=chosen)
    writer = index.writer(heap_size=HEAP_BYTES, num_threads=1)
    count = 0
    for key, text in docs:
        writer.add_document(_document(key, text, chosen))
        count += 1
    writer.commit()
    writer.wait_merging_threads()
    for lock in folder.glob(".tantivy-*.lock"):  # an immutable build holds no writer
        lock.unlink()
    return {
        "engine": "tantivy",
        "analyzer": DESCRIPTIONS.get(analyser_name, analyser_name),
        "analyser": analyser_name,
        "documents": count,
        "bytes": folder_bytes(folder),
        "build_seconds": round(time.perf_counter() - started, 3),
    }


KEY_CACHE_MAX = 1_000_000  # entries (about 100 MB at most) per searcher


class LexicalSearcher:
    """A point-in-time view of the lexical index: BM25 top ``k`` for a query, within a key set if given."""

    def __init__(self, index: Any, searcher: Any, schema: Any, chosen: Analyser, analyse: Any) -> None:
        self._index, self._searcher, self._schema, self._analyse = index, searcher, schema, analyse
        self._prepare = chosen.prepare
        self.analyser_name = chosen.name.split(":", 1)[0]
        # tantivy-py exposes no fast-field reader, so a hit's key is read from its stored document, and
        # hybrid search reads 1,000 of them per query (most of its lexical time). A searcher's segments
        # never change, so (segment, doc) -> key is cached for the searcher's life, up to a bound.
        self._keys: dict[tuple[int, int], int] = {}

    @property
    def count(self) -> int:
        return int(self._searcher.num_docs)

    def terms(self, text: str) -> list[str]:
        """The distinct terms the analyser makes of ``text`` (what a query matches on)."""
        return list(dict.fromkeys(self._analyse.analyze(self._prepare(text))))

    def search(
        self,
        text: str,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        excluded: Sequence[int] = (),
    ) -> list[tuple[int, float]]:
        """``(key, BM25 score)`` best first. ``allowed``: sorted keys a filter lets through (``None``: all);
        ``excluded``: keys that must not come back (deleted or replaced since the build)."""
        t = _tantivy()
        terms = self.terms(text)
        if not terms or k < 1 or (allowed is not None and len(allowed) == 0):
            return []
        parts = [(t.Occur.Should, t.Query.term_query(self._schema, BODY, term)) for term in terms]
        query = t.Query.boolean_query(parts)
        clauses = [(t.Occur.Must, query)]
        if excluded:
            clauses.append((t.Occur.MustNot, t.Query.term_set_query(self._schema, KEY, [int(x) for x in excluded])))
        post_filter = allowed is not None and len(allowed) > MAX_KEY_SET
        if allowed is not None and not post_filter:
            clauses.append((t.Occur.Must, t.Query.term_set_query(self._schema, KEY, allowed.tolist())))
        query = t.Query.boolean_query(clauses) if len(clauses) > 1 else query
        fetch = k
        while True:
            hits = self._searcher.search(query, fetch, count=False).hits
            found = [(self._key(addr), float(score)) for score, addr in hits]
            if not post_filter:
                return found
            assert allowed is not None
            keep = [(key, s) for key, s in found if _contains(allowed, key)]
            if len(keep) >= k or len(hits) < fetch:
                return keep[:k]
            fetch *= 4  # a broad filter that the first results did not satisfy: look deeper

    def _key(self, addr: Any) -> int:
        where = (addr.segment_ord, addr.doc)
        key = self._keys.get(where)
        if key is None:
            key = int(self._searcher.doc(addr)[KEY][0])
            if len(self._keys) < KEY_CACHE_MAX:
                self._keys[where] = key
        return key


def _contains(sorted_keys: np.ndarray, key: int) -> bool:
    i = int(np.searchsorted(sorted_keys, key))
    return i < len(sorted_keys) and int(sorted_keys[i]) == key


class LexicalIndex:
    """An opened lexical index: read-only over a build folder, or a private writable working copy."""

    def __init__(self, folder: Path, *, working: Path | None = None, analyser_name: str = "english") -> None:
        self.folder = Path(folder)
        self.working = working
        self.analyser = analyser(analyser_name)
        self._schema = _schema(self.analyser)
        self._analyse = self.analyser.tantivy()
        self._index = _open(working or self.folder, create=False, chosen=self.analyser)
        self._writer: Any = None
        self._searcher = self._make_searcher()

    @classmethod
    def open_writable(cls, folder: Path, work_root: Path, analyser_name: str = "english") -> LexicalIndex:
        """A working copy of the build's index in a new folder under ``work_root`` (hard links where the file
        system allows, copies otherwise); writes go there, the build's files are never changed."""
        work_root.mkdir(parents=True, exist_ok=True)
        _remove_orphans(work_root)
        working = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=work_root))
        for path in Path(folder).iterdir():
            if path.is_file() and not path.name.endswith(".lock"):
                try:
                    os.link(path, working / path.name)
                except OSError:
                    shutil.copy2(path, working / path.name)
        return cls(folder, working=working, analyser_name=analyser_name)

    def _make_searcher(self) -> LexicalSearcher:
        self._index.reload()
        return LexicalSearcher(self._index, self._index.searcher(), self._schema, self.analyser, self._analyse)

    def searcher(self) -> LexicalSearcher:
        return self._searcher

    def apply(self, adds: Sequence[tuple[int, str]], deletes: Sequence[int]) -> LexicalSearcher:
        """Delete ``deletes`` and add ``adds`` (keys) in one commit; return the view that includes them."""
        if self.working is None:
            raise RuntimeError("this lexical index is read-only: open it with open_writable")
        if self._writer is None:
            self._writer = self._index.writer(heap_size=HEAP_BYTES, num_threads=1)
        t = _tantivy()
        for key in deletes:
            # a term query built through the schema: delete_documents_by_term makes a signed term from a
            # Python int, which never matches this unsigned field
            self._writer.delete_documents_by_query(t.Query.term_query(self._schema, KEY, int(key)))
        for key, text in adds:
            self._writer.add_document(_document(key, text, self.analyser))
        self._writer.commit()
        # closed after each batch: a writer kept open holds about 20 MB and 6 threads per collection, and
        # opening one again costs nothing measurable beside the commit (about 28 ms a batch either way)
        self._writer.wait_merging_threads()
        self._writer = None
        self._searcher = self._make_searcher()
        return self._searcher

    def close(self) -> None:
        if self._writer is not None:
            self._writer.wait_merging_threads()
            self._writer = None
        if self.working is not None:
            shutil.rmtree(self.working, ignore_errors=True)


def _remove_orphans(work_root: Path) -> None:
    """Working copies left by processes that died without closing (killed): their pid is gone."""
    for folder in work_root.glob(f"{WORK_PREFIX}*"):
        pid = folder.name[len(WORK_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
