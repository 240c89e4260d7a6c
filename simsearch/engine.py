"""The service's async front of the core: batched model calls, search modes, similarity, hot reload.

Knows asyncio but not HTTP. The bi-encoder and the cross-encoder each sit behind a
:class:`~simsearch.batching.MicroBatcher`; FAISS and the document store run in the default thread pool.
The runtime (model + index) is swapped as a whole on reload, and each request keeps the runtime it
started with, so a reload never changes an index under a running request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simsearch.batching import MicroBatcher
from simsearch.index_folder import IndexLoadError, open_index
from simsearch.runtime import Runtime
from simsearch.search import Hit, Mode, ModeUnavailableError, Ranking, Searcher, top_k
from simsearch.similarity import distinct_texts, paired_cosines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchOutcome:
    hits: list[Hit]
    cross_encoder_calls: int
    runtime: Runtime


class Engine:
    def __init__(self, runtime: Runtime) -> None:
        s = runtime.settings
        self.runtime = runtime
        self.timeout = s.request_timeout_s
        encoder, cross, lanes = runtime.encoder, runtime.cross, runtime.threads

        def encode(texts: list[str], alone: bool) -> np.ndarray:
            return encoder.encode(texts, threads=lanes.count(alone))

        self.bi = MicroBatcher(
            encode,
            name="bi-encoder",
            max_batch=s.max_batch,
            max_wait_ms=s.max_wait_ms,
            max_queue=s.max_queue,
            streams=lanes.streams,
        )
        self.cross: MicroBatcher[tuple[str, str]] | None = None
        if cross is not None:

            def score(pairs: list[tuple[str, str]], alone: bool) -> np.ndarray:
                return cross.score(pairs, threads=lanes.count(alone))

            self.cross = MicroBatcher(
                score,
                name="cross-encoder",
                max_batch=s.max_batch,
                max_wait_ms=s.max_wait_ms,
                max_queue=s.max_queue * 8,
                streams=lanes.streams,
            )
        self._reload_lock = asyncio.Lock()

    async def stop(self) -> None:
        await self.bi.stop()
        if self.cross is not None:
            await self.cross.stop()

    # -- model calls ------------------------------------------------------------------------------------
    async def encode(self, texts: Sequence[str]) -> np.ndarray:
        return await self.bi.submit(list(texts), self.timeout)

    async def cross_scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if self.cross is None:
            raise ModeUnavailableError("no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL to a trained one")
        return await self.cross.submit(list(pairs), self.timeout)

    # -- search -----------------------------------------------------------------------------------------
    async def search(self, query: str, k: int, mode: Mode = "dense", k_r: int = 100) -> SearchOutcome:
        rt = self.runtime  # fixed for this request, even if a reload happens meanwhile
        searcher = rt.searcher
        if mode == "dense":  # the hot path: one encode in the batcher, one hop to the thread pool
            # (measured: FAISS and the documents on the batch's own thread instead is 10 % slower at c16)
            vector = (await self.encode([searcher.query_prefix + query]))[0]
            hits = await asyncio.to_thread(lambda: searcher.hits(searcher.search_vectors(vector[None, :], k)[0]))
            return SearchOutcome(hits, 0, rt)
        ranking = await self._rank(searcher, query, k, mode, k_r)
        hits = await asyncio.to_thread(searcher.hits, list(zip(ranking.positions, ranking.scores, strict=True)))
        return SearchOutcome(hits, ranking.cross_encoder_calls, rt)

    async def _rank(self, searcher: Searcher, query: str, k: int, mode: Mode, k_r: int) -> Ranking:
        if mode == "cur":
            cur = searcher.cur_arrays()
            if self.cross is None:
                raise ModeUnavailableError("no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL to a trained one")
            anchors = cur.anchors.tolist()
            c = await self.cross_scores([(query, t) for t in await asyncio.to_thread(searcher.texts, anchors)])
            fresh = await asyncio.to_thread(searcher.cur_candidates, c, k_r)
            exact = await self.cross_scores([(query, t) for t in await asyncio.to_thread(searcher.texts, fresh)])
            return top_k(anchors + fresh, np.concatenate([c, exact]), k)
        if mode == "rerank" and self.cross is None:
            raise ModeUnavailableError("no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL to a trained one")
        vector = (await self.encode([searcher.query_prefix + query]))[0]
        if mode == "dense":
            ((ranked),) = await asyncio.to_thread(searcher.search_vectors, vector[None, :], k)
            return Ranking([p for p, _ in ranked], [s for _, s in ranked])
        candidates = await asyncio.to_thread(searcher.dense_candidates, vector, k_r)
        texts = await asyncio.to_thread(searcher.texts, candidates)
        return top_k(candidates, await self.cross_scores([(query, t) for t in texts]), k)

    # -- similarity -------------------------------------------------------------------------------------
    async def similarity(self, pairs: Sequence[tuple[str, str]], model: str) -> np.ndarray:
        if model == "cross":
            return await self.cross_scores(pairs)
        texts, rows_a, rows_b = distinct_texts(pairs)
        return paired_cosines(await self.encode(texts), rows_a, rows_b)

    # -- hot reload -------------------------------------------------------------------------------------
    async def reload(self) -> Runtime:
        """Open the newest build of the configured index and swap it in; a broken build raises
        ``IndexLoadError`` and the current one keeps serving."""
        async with self._reload_lock:
            old = self.runtime
            new = await asyncio.to_thread(self._open, old)
            self.runtime = new
            # requests that started on the old index finish on it; close it once they have had time to
            asyncio.get_running_loop().call_later(old.settings.request_timeout_s + 5, old.index.close)
            log.info(
                "reloaded index %s: build %s -> %s",
                new.index.name,
                old.index.manifest.build_id,
                new.index.manifest.build_id,
            )
            return new

    @staticmethod
    def _open(old: Runtime) -> Runtime:
        s = old.settings
        index = open_index(s.index_path, verify=s.verify_checksums)
        try:
            searcher = Searcher(old.encoder, index, query_prefix=s.query_prefix, cross=old.cross)
        except IndexLoadError:
            index.close()
            raise
        return Runtime(
            settings=s, encoder=old.encoder, index=index, searcher=searcher, cross=old.cross, threads=old.threads
        )
