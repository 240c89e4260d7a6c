"""One collection in the service: its searches, writes, reads, compaction and reloads, on the event loop.

Knows asyncio but not HTTP. The runtime (collection + models) is swapped as a whole on reload, and each
request keeps the runtime it started with, so a reload or a compaction never changes an index under a
running request. Blocking work (writes, index reads, opening builds) runs in the thread pool; model calls
go through the shared batchers (simsearch.serving.pool). Live counts are kept here, refreshed after each
write and by the background loop, so ``/ready`` and ``/metrics`` never wait for a store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from simsearch.collection.base import CompactionError
from simsearch.collection.delta import WriteResult
from simsearch.data.corpus import Document
from simsearch.search import SearchParams, SearchResult
from simsearch.serving.pool import BatchedModels
from simsearch.serving.runtime import Runtime
from simsearch.text.analysers import analyser, mostly_cjk

log = logging.getLogger(__name__)
LANGUAGE_WARNING_SHARE = 0.2  # documents mostly in a script the model or analyser is not made for


@dataclass(frozen=True)
class SearchOutcome:
    result: SearchResult
    runtime: Runtime


@dataclass
class Counts:
    """What the collection holds, as last counted (never counted on the event loop)."""

    documents: int = 0  # the build's and the writes since, live
    base: int = 0  # in the build the collection serves
    uncompacted: int = 0  # documents written (upserted or deleted) since that build
    sequence: int = 0


class CollectionEngine:
    """A collection's operations. ``reopen()`` opens the newest build of this collection as a new runtime
    (in a thread); ``models`` are the shared batchers of its models."""

    def __init__(self, runtime: Runtime, models: BatchedModels, reopen: Callable[[], Runtime]) -> None:
        self.runtime = runtime
        self.models = models
        self._reopen = reopen
        self.name = runtime.name
        self._reload_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()  # writes, and the swap to a new build, one at a time
        self.compacting = False
        self.last_compaction: dict[str, Any] | None = None
        self.counts = Counts()
        self._pipelines: dict[str, Any] = {}
        self.written = 0  # model inputs (documents or passages) written through this service since it opened...
        self.cut = 0  # ...and how many of their model inputs were longer than the model's window (cut)
        self.documents_written = 0  # documents written through this service since it opened the collection...
        self.cjk_written = 0  # ...and how many of them are mostly Chinese, Japanese or Korean
        self.on_reload: Callable[[str], None] | None = None  # called with "ok" after every swap (metrics)

    @contextlib.contextmanager
    def hold(self) -> Iterator[Runtime]:
        """The current runtime, held open until the request is done (a reload may retire it meanwhile)."""
        rt = self.runtime
        with rt.in_use():
            yield rt

    # -- reading -----------------------------------------------------------------------------------------
    async def search(self, query: str, params: SearchParams) -> SearchOutcome:
        with self.hold() as rt:  # fixed for this request, even if a reload happens meanwhile
            return SearchOutcome(await rt.pipeline.search(rt.view, self.models, query, params), rt)

    async def get(self, doc_id: str) -> Document | None:
        with self.hold() as rt:
            return await asyncio.to_thread(rt.view.get, doc_id)

    async def query_truncated(self, query: str) -> bool:
        """Whether the query (with its model's prefix) is longer than the model's window. A query short in
        bytes cannot be, and is not tokenised; a long one is tokenised off the event loop."""
        rt = self.runtime
        text = rt.bi.entry.query_prefix + query
        if len(text.encode()) + 4 <= rt.encoder.max_seq_length:
            return False
        return bool((await asyncio.to_thread(rt.encoder.truncated, [text]))[0])

    def query_terms(self, query: str) -> list[str]:
        """The query's terms as the collection's analyser makes them (what the page highlights: words of a
        Chinese query are found inside Chinese text, where no space separates them)."""
        chosen = analyser(self.runtime.spec.analyser)
        pipeline = self._pipelines.get(chosen.name)
        if pipeline is None:
            pipeline = self._pipelines[chosen.name] = chosen.tantivy()
        return list(dict.fromkeys(pipeline.analyze(chosen.prepare(query))))

    def unavailable(self, mode: Any) -> str | None:
        """Why ``mode`` cannot run on this collection, or ``None`` (may read the index: call in a thread)."""
        with self.hold() as rt:
            return rt.pipeline.unavailable(rt.view, self.models, mode)

    # -- writing -----------------------------------------------------------------------------------------
    async def upsert(self, docs: Sequence[Document]) -> WriteResult:
        """Encode and write one all-or-nothing batch; durable and visible to searches when this returns."""
        with self.hold() as rt:
            prefix = rt.bi.entry.document_prefix
            splitter = rt.splitter
            passages = await asyncio.to_thread(splitter.split, docs, prefix)  # tokenises: off the event loop
            vectors = await self.models.encode(passages.inputs)
            cut = sum(await asyncio.to_thread(rt.encoder.truncated, passages.inputs))
        spans = passages.spans if splitter.passage_tokens is not None else None
        async with self._write_lock:
            with self.hold() as rt:  # the runtime current now: a compaction may have swapped it
                result = await asyncio.to_thread(rt.collection.upsert, docs, vectors, spans)
                self.written += len(passages.inputs)
                self.cut += cut
                self.documents_written += len(docs)
                self.cjk_written += sum(mostly_cjk(d.content()) for d in docs)
                await asyncio.to_thread(self._count, rt)
        return result

    async def delete(self, ids: Sequence[str]) -> WriteResult:
        async with self._write_lock:
            with self.hold() as rt:
                result = await asyncio.to_thread(rt.collection.delete, ids)
                await asyncio.to_thread(self._count, rt)
        return result

    def _count(self, rt: Runtime) -> None:
        view = rt.view
        live = view.count
        base = getattr(getattr(rt.collection, "index", None), "manifest", None)
        self.counts = Counts(
            documents=live,
            base=base.count if base is not None else live,
            uncompacted=rt.collection.uncompacted(),
            sequence=rt.collection.sequence,
        )

    async def recount(self) -> Counts:
        with self.hold() as rt:
            await asyncio.to_thread(self._count, rt)
        return self.counts

    async def refresh(self) -> None:
        """Pick up other processes' write batches; a replica also swaps to the build the writer published."""
        rt = self.runtime
        if not rt.settings.writable and await asyncio.to_thread(rt.collection.stale):
            await self.reload()
            return
        async with self._write_lock:
            with self.hold() as held:
                applied = await asyncio.to_thread(held.collection.refresh)
                if applied:
                    await asyncio.to_thread(self._count, held)

    # -- compaction and reload -----------------------------------------------------------------------------
    def wants_compaction(self) -> bool:
        limit = self.runtime.settings.compact_after
        return bool(limit) and not self.compacting and self.counts.uncompacted >= limit

    async def compact(self) -> dict[str, Any]:
        """Fold the writes into a new build (in a thread: searches and writes go on), then swap to it."""
        if self.compacting:
            raise CompactionError("a compaction is already running")
        self.compacting = True
        started = time.perf_counter()
        try:
            with self.hold() as rt:
                cross = rt.cross
                folded = await asyncio.to_thread(
                    rt.collection.compact,
                    cross.score if cross is not None else None,
                    cross.sha256 if cross is not None else None,
                )
            before = rt.build_id
            new = await self.reload() if folded else self.runtime
            self.last_compaction = {
                "previous_build_id": before,
                "build_id": new.build_id,
                "sequence": new.collection.sequence,
                "seconds": round(time.perf_counter() - started, 3),
            }
            log.info("compacted %s: %s", new.name, self.last_compaction)
            return self.last_compaction
        except CompactionError:
            raise
        except Exception:
            log.exception("compaction of %s failed; the current build keeps serving", self.name)
            raise
        finally:
            self.compacting = False

    async def fit_fusion(self, queries: int = 200, pool: int = 2000) -> Any:
        """Choose hybrid's fusion on self-supervised queries from the documents (no judgments needed), record
        it with the collection, and serve with it. ``None`` when there are too few documents to measure on."""
        from simsearch.evaluation.unjudged import fit_unjudged

        with self.hold() as rt:
            info = await asyncio.to_thread(
                fit_unjudged,
                rt.view,
                rt.encoder.encode,
                rt.splitter,
                query_prefix=rt.bi.entry.query_prefix,
                document_prefix=rt.bi.entry.document_prefix,
                queries=queries,
                pool=pool,
            )
            if info is None:
                return None
            async with self._write_lock:
                await asyncio.to_thread(rt.collection.record_fusion, info)
        if rt.collection.backend == "embedded":
            await self.reload()
        return info

    async def reload(self) -> Runtime:
        """Open the newest build of this collection and swap it in; a broken build raises ``IndexLoadError``
        and the current one keeps serving."""
        async with self._reload_lock:
            old = self.runtime
            new = await asyncio.to_thread(self._reopen)
            async with self._write_lock:  # writes that landed while the new build opened are caught up first
                try:
                    await asyncio.to_thread(new.collection.refresh)
                    await asyncio.to_thread(self._count, new)
                except BaseException:
                    new.close()
                    raise
                self.runtime = new
            old.retire()  # requests that started on the old build finish on it; the last one closes it
            if self.on_reload is not None:
                self.on_reload("ok")
            log.info("reloaded collection %s: build %s -> %s", new.name, old.build_id, new.build_id)
            return new

    def warnings(self) -> list[str]:
        """What makes this collection's results worse, with the measured share: texts cut at the model's
        window (its build's count and the writes since this service opened it)."""
        rt = self.runtime
        info = rt.collection.describe().get("passages") or {}
        built = int(info.get("over_window") or 0)
        base = int(info.get("passages") or self.counts.base)
        out = []
        cut, seen = built + self.cut, base + self.written
        if cut and seen:
            window = rt.encoder.max_seq_length
            unit = "documents" if info.get("tokens") is None else "passages (their titles are long)"
            advice = (
                " and are cut there: create the collection with `passages` to search all of their text"
                if info.get("tokens") is None
                else ""
            )
            out.append(
                f"{cut} of {seen} {unit} ({100 * cut / seen:.1f} %) are longer than model {rt.bi.name!r}'s window "
                f"of {window} tokens{advice}"
            )
        out.extend(self._language_warnings(rt))
        return out

    def _language_warnings(self, rt: Runtime) -> list[str]:
        """A model or analyser made for other languages than the documents' (by script), with the share."""
        scripts = rt.collection.describe().get("scripts") or {}
        seen = int(scripts.get("documents") or 0) + self.documents_written
        cjk = int(scripts.get("cjk") or 0) + self.cjk_written
        if not seen or cjk / seen < LANGUAGE_WARNING_SHARE:
            return []
        share = f"{cjk} of {seen} documents ({100 * cjk / seen:.1f} %) are mostly Chinese, Japanese or Korean"
        out = []
        languages = rt.bi.entry.languages
        if languages is not None and not {"*", "zh", "ja", "ko"} & set(languages):
            out.append(
                f"{share}, but model {rt.bi.name!r} is made for {', '.join(languages)}: use a multilingual model "
                '(a registry entry with languages ["*"] or ["zh"], such as multilingual-e5-small)'
            )
        if rt.spec.analyser == "english":
            out.append(
                f"{share}, but the collection's analyser is english (Chinese text becomes whole clauses, so words "
                "inside them never match): create it with analyser chinese or standard"
            )
        return out

    def retire(self, on_closed: Callable[[], None] | None = None) -> None:
        """The collection is gone from the service: close it once its last request is done."""
        self.runtime.retire(on_closed)
