"""FAISS, built from an index-factory string (``"Flat"``, ``"HNSW32"``, ``"IVF1024,PQ32"``...)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from simsearch.ann.base import AnnIndex

MAX_EF = 4096

# Below FAISS's BLAS threshold (20 queries) a search is one scan per query, and an OpenMP team adds only its
# cost: libgomp keeps a team per calling thread and its setting per thread too, so each thread that searches
# (the service's request threads) had its own team of as many workers as cores, all contending with the
# model's threads. One query at a time on a thread that searches with one OpenMP thread: 1.9x the searches
# per second of four concurrent threads over the demo's 35,289 passage vectors (671-700 against 353-366 a
# second, exact search, while the machine was busy; docs/results/serving.md). Larger batches (builds,
# recall tuning) keep every core.
SMALL_BATCH = 20
ALL_THREADS = faiss.omp_get_max_threads()
_omp = threading.local()


def omp_threads_for(queries: int) -> int:
    """Set (on this thread only) and return the OpenMP threads a search of ``queries`` queries uses."""
    want = 1 if queries < SMALL_BATCH else ALL_THREADS
    if getattr(_omp, "threads", None) != want:
        faiss.omp_set_num_threads(want)
        _omp.threads = want
    return want


class FaissIndex(AnnIndex):
    kind = "faiss"
    filename = "index.faiss"

    def __init__(self, dim: int, factory: str = "Flat", **params: Any) -> None:
        super().__init__(dim)
        self.factory = factory
        self.index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        self.search_params: dict[str, int] = {}
        for name in ("efSearch", "nprobe"):
            if name in params:
                self.set_search_param(name, int(params[name]))

    def set_search_param(self, name: str, value: int) -> None:
        """A search-time knob (``efSearch`` for HNSW, ``nprobe`` for IVF), recorded in the manifest."""
        faiss.ParameterSpace().set_index_parameter(self.index, name, value)
        self.search_params[name] = value

    def train(self, vectors: np.ndarray) -> None:
        if not self.index.is_trained:
            self.index.train(self._check(vectors))

    def add(self, vectors: np.ndarray) -> None:
        vectors = self._check(vectors)
        if not self.index.is_trained:
            raise RuntimeError(f"FAISS index {self.factory!r} must be trained before vectors are added")
        self.index.add(vectors)

    def count(self) -> int:
        return int(self.index.ntotal)

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None, effort: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        params = self._search_parameters(self._check_mask(allowed), effort)
        queries = self._check(queries)
        omp_threads_for(len(queries))
        scores, positions = self.index.search(queries, k, params=params)
        scores = np.where(positions < 0, -np.inf, scores).astype(np.float32)
        return scores, positions.astype(np.int64)

    def _search_parameters(self, allowed: np.ndarray | None, effort: float) -> Any:
        """FAISS search parameters for this call: an ID selector over the allowed positions, and the tuned
        efSearch / nprobe raised by ``effort`` (None when neither applies: the index's own settings)."""
        if allowed is None and effort == 1.0:
            return None
        params: Any
        if "efSearch" in self.search_params:
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            ef = self.search_params["efSearch"]
            params.efSearch = int(min(max(ef, ef * effort), MAX_EF))
        elif "nprobe" in self.search_params:
            params = faiss.SearchParametersIVF()
            lists = int(faiss.extract_index_ivf(self.index).nlist)
            params.nprobe = int(min(max(self.search_params["nprobe"], self.search_params["nprobe"] * effort), lists))
        else:
            params = faiss.SearchParameters()
        bits = None
        if allowed is not None:
            bits = np.packbits(allowed, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        params.bits = bits  # the selector reads this buffer: keep it alive as long as the parameters
        return params

    def save(self, folder: Path) -> Path:
        path = Path(folder) / self.filename
        faiss.write_index(self.index, str(path))
        return path

    @classmethod
    def load(cls, folder: Path, dim: int, params: dict[str, Any]) -> FaissIndex:
        path = Path(folder) / cls.filename
        try:
            raw = faiss.read_index(str(path))
        except RuntimeError as exc:  # FAISS reports unreadable files as RuntimeError with a C++ trace
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
            raise ValueError(f"FAISS index {path} cannot be read: {first}") from None
        if raw.d != dim:
            raise ValueError(f"FAISS index {path} has dimension {raw.d}, the manifest says {dim}")
        index = cls.__new__(cls)
        AnnIndex.__init__(index, dim)
        index.factory = params.get("factory", "Flat")
        index.index = raw
        index.search_params = {}
        for name in ("efSearch", "nprobe"):
            if name in params:
                index.set_search_param(name, int(params[name]))
        return index

    def params(self) -> dict[str, Any]:
        return {"factory": self.factory, **self.search_params}
