"""Index type by corpus size, with search parameters tuned to a measured recall.

Exact (``Flat``) search while the corpus is small enough to scan quickly; above ``exact_limit`` vectors,
HNSW (graph) with ``efSearch`` raised until recall@10 against exact search reaches the target; above
``pq_limit``, IVF with product quantisation (memory) with ``nprobe`` raised the same way. Recall is
measured on held-apart vectors: a seeded sample of the corpus used as queries, each query's own vector
left out of both result lists, so the figure is not flattered by self-matches. Real queries are often
unlike documents (a question against abstracts), and an index tuned on documents then misses its target
on them (measured on 1,000,000 vectors: efSearch tuned to 0.95 on held-apart documents gave 0.64 on
SciFact's claims, see docs/results/collections.md), so a build may pass ``query_vectors``, encoded
queries of the kind it will serve, and recall is then measured on those.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import faiss
import numpy as np

from simsearch.ann.faiss_index import FaissIndex

log = logging.getLogger(__name__)

EXACT_LIMIT = 100_000
PQ_LIMIT = 5_000_000
HNSW_EF = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
IVF_NPROBE = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def auto_factory(n: int, dim: int, exact_limit: int = EXACT_LIMIT, pq_limit: int = PQ_LIMIT) -> str:
    if n <= exact_limit:
        return "Flat"
    if n <= pq_limit:
        return "HNSW32"
    lists = 1 << round(math.log2(4 * math.sqrt(n)))
    return f"IVF{lists},PQ{dim // 4}"


def resolve_factory(requested: str, n: int, dim: int, exact_limit: int = EXACT_LIMIT) -> str:
    """A FAISS factory string for what was asked: ``auto`` (by size, as :func:`auto_factory`), a collection's
    index policy (``flat``, ``hnsw``, ``ivf``), or a factory string as it is. An empty collection is always
    ``Flat``: there is nothing to train a quantiser on, and the next compaction chooses again."""
    if n == 0:
        return "Flat"
    policy = requested.lower()
    if policy == "auto":
        return auto_factory(n, dim, exact_limit)
    if policy == "flat":
        return "Flat"
    if policy == "hnsw":
        return "HNSW32"
    if policy == "ivf":
        # faiss wants at least 39 training points per list: fewer lists for a small collection
        lists = max(1, min(1 << round(math.log2(4 * math.sqrt(n))), n // 39))
        return f"IVF{lists},Flat"
    return requested


def recall_at_10(index: FaissIndex, vectors: np.ndarray, sample: np.ndarray, truth: np.ndarray) -> float:
    _, found = index.search(vectors[sample], 11)
    hits = 0
    for q, row_found, row_truth in zip(sample, found, truth, strict=True):
        got = [p for p in row_found if p != q][:10]
        hits += len(set(got).intersection(row_truth))
    return hits / (10 * len(sample))


def recall_on_queries(index: FaissIndex, queries: np.ndarray, truth: np.ndarray) -> float:
    _, found = index.search(queries, 10)
    return sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)) / truth.size


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Positions of each query's exact top ``k`` by inner product over ``vectors``."""
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    return flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)[1]


def exact_neighbours(vectors: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """The exact top 10 of each sampled corpus vector, itself left out."""
    found = exact_top(vectors, vectors[sample], 11)
    return np.array([[p for p in row if p != q][:10] for q, row in zip(sample, found, strict=True)])


def top_documents(rows: np.ndarray, groups: np.ndarray, k: int = 10, skip: int = -1) -> list[int]:
    """The first ``k`` distinct documents (``groups[row]``) of ranked vector rows, ``skip`` left out."""
    out: list[int] = []
    for row in rows:
        if row < 0:
            continue
        doc = int(groups[row])
        if doc != skip and doc not in out:
            out.append(doc)
            if len(out) == k:
                break
    return out


def document_recall(
    index: FaissIndex, vectors: np.ndarray, groups: np.ndarray, sample: np.ndarray, truth: list[list[int]], depth: int
) -> float:
    """Recall@10 over documents: the ANN's passages collapsed to their documents, against the exact ones
    (each sampled passage's own document left out, as a held-apart query)."""
    _, found = index.search(vectors[sample], depth)
    hits = sum(
        len(set(top_documents(row, groups, skip=int(groups[q]))) & set(t))
        for q, row, t in zip(sample, found, truth, strict=True)
    )
    return hits / max(1, sum(len(t) for t in truth))


def build_tuned(
    vectors: np.ndarray,
    factory: str = "auto",
    *,
    target_recall: float = 0.95,
    queries: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    exact_limit: int = EXACT_LIMIT,
    query_vectors: np.ndarray | None = None,
) -> tuple[FaissIndex, dict[str, Any]]:
    """A FAISS index over ``vectors`` and what was measured: ``{"recall_at_10", "tuned": {param: value}}``.
    ``query_vectors``: measure recall on these queries (against exact search over ``vectors``) instead of
    on held-apart corpus vectors."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    factory = resolve_factory(factory, n, dim, exact_limit)
    index = FaissIndex(dim, factory=factory)
    if not index.index.is_trained:
        rng = np.random.default_rng(seed)
        # 64 training points per list is within faiss's advice (39 to 256) and keeps k-means affordable
        train = vectors[rng.choice(n, size=min(n, 64 * _lists(factory) or n), replace=False)]
        index.train(train)
    index.add(vectors)
    if factory == "Flat":
        return index, {"recall_at_10": 1.0, "tuned": {}}
    given = query_vectors is not None and len(query_vectors) > 0
    if given:
        qv = np.ascontiguousarray(query_vectors, dtype=np.float32)[:queries]
        truth = exact_top(vectors, qv)

        def measure() -> float:
            return recall_on_queries(index, qv, truth)
    elif groups is not None:  # passages: recall counts documents (a document's passages are one answer)
        sample = np.random.default_rng(seed).choice(n, size=min(queries, n), replace=False)
        per_doc = max(1, int(np.ceil(n / max(1, len(np.unique(groups))))))
        depth = min(n, 10 * per_doc + 20)
        exact = exact_top(vectors, vectors[sample], depth)
        doc_truth = [top_documents(row, groups, skip=int(groups[q])) for q, row in zip(sample, exact, strict=True)]
        truth = np.asarray([len(t) for t in doc_truth])

        def measure() -> float:
            return document_recall(index, vectors, groups, sample, doc_truth, depth)
    else:
        sample = np.random.default_rng(seed).choice(n, size=min(queries, n), replace=False)
        truth = exact_neighbours(vectors, sample)

        def measure() -> float:
            return recall_at_10(index, vectors, sample, truth)

    name, values = ("efSearch", HNSW_EF) if factory.startswith("HNSW") else ("nprobe", IVF_NPROBE)
    recall = 0.0
    for value in values:
        index.set_search_param(name, value)
        recall = measure()
        if recall >= target_recall:
            break
    else:
        log.warning(
            "%s reaches recall@10 %.3f at most (%s=%s), below the target %.2f; a larger %s, a refine stage "
            "or another factory would be needed",
            factory,
            recall,
            name,
            index.search_params[name],
            target_recall,
            name,
        )
    return index, {
        "recall_at_10": round(recall, 4),
        "tuned": {name: index.search_params[name]},
        "target_recall": target_recall,
        "target_reached": recall >= target_recall,
        "recall_queries": len(truth),
        "recall_measured_on": "given queries"
        if given
        else ("held-apart passages, counted by document" if groups is not None else "held-apart corpus vectors"),
    }


def _lists(factory: str) -> int:
    head = factory.split(",")[0]
    return int(head[3:]) if head.startswith("IVF") and head[3:].isdigit() else 0
