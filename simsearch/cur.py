"""CUR approximation of a cross-encoder (ANNCUR; Yadav et al., EMNLP 2022) and its adaptive variant.

Offline, ``k_q`` anchor queries are scored against every item: ``R = CE(anchor queries × items)``
(``k_q × N``). With ``k_i`` anchor items, ``U = pinv(R[:, anchors])`` and ``E = U · R`` (``k_i × N``).
Online, a query costs ``k_i`` cross-encoder calls, ``c = CE(query × anchor items)``, and the approximate
scores of all items are ``ŝ = c · E``: a maximum-inner-product search over the columns of ``E``. The
top candidates are then re-scored exactly. If the full query × item score matrix has rank ``r ≤ k_i`` and
the anchors capture it, ``ŝ`` is exact.

The expensive part is ``R``: :func:`score_matrix` computes it row by row into a memory-mapped file with
a progress record, so an interrupted run resumes where it stopped and gives the same result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from simsearch.atomic import atomic_write_json

Scorer = Callable[[list[tuple[str, str]]], np.ndarray]  # pairs -> scores


def select_anchor_items(
    n_items: int, k_i: int, method: str, seed: int, embeddings: np.ndarray | None = None
) -> np.ndarray:
    """``k_i`` distinct item positions: uniformly at random, or the item nearest each k-means centroid
    of the dense embeddings (one per cluster, so the anchors cover the corpus)."""
    if not 1 <= k_i <= n_items:
        raise ValueError(f"k_i must be between 1 and the {n_items} items, got {k_i}")
    rng = np.random.default_rng(seed)
    if method == "random":
        return np.sort(rng.choice(n_items, size=k_i, replace=False))
    if method == "kmeans":
        if embeddings is None or len(embeddings) != n_items:
            raise ValueError("k-means anchor selection needs one dense embedding per item")
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k_i, random_state=seed, n_init=1).fit(embeddings)
        chosen: list[int] = []
        taken: set[int] = set()
        for centre in km.cluster_centers_:
            order = np.argsort(-(embeddings @ centre))  # nearest by inner product: embeddings are unit vectors
            pick = next(int(i) for i in order if int(i) not in taken)
            taken.add(pick)
            chosen.append(pick)
        return np.sort(np.array(chosen))
    raise ValueError(f"unknown anchor selection {method!r}; use 'random' or 'kmeans'")


def _key(parts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for p in parts:
        digest.update(p.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def progress_record(path: Path) -> Path:
    """Where :func:`score_matrix` records the rows of ``path`` it has finished."""
    return Path(path).with_suffix(".progress.json")


def rows_done(path: Path) -> int:
    """Rows of the score matrix at ``path`` finished so far by its last run (0 when it has no record)."""
    record = progress_record(path)
    return int(json.loads(record.read_text()).get("rows_done", 0)) if Path(path).is_file() and record.is_file() else 0


def score_matrix(
    score: Scorer,
    queries: Sequence[str],
    items: Sequence[str],
    path: Path,
    *,
    model_key: str,
    chunk: int = 512,
    progress: bool = True,
    stop_after_rows: int | None = None,
) -> np.ndarray:
    """``CE(queries × items)`` as a float32 ``(len(queries), len(items))`` array stored at ``path`` (``.npy``).

    Rows are written one by one and recorded in ``<path>.progress.json``; calling again with the same
    model, queries and items continues after the last finished row (``stop_after_rows`` stops early, as an
    interruption would). A file made for other inputs is never reused: the record holds their hash.
    """
    path = Path(path)
    record_path = progress_record(path)
    key = _key([model_key, str(len(items)), *queries, _key(items)])
    shape = (len(queries), len(items))
    done = 0
    if path.is_file() and record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("key") == key:
            done = int(record["rows_done"])
    if done == 0 or not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape).flush()
        atomic_write_json(record_path, {"key": key, "rows_done": 0, "shape": list(shape)})
        done = 0
    matrix = np.load(path, mmap_mode="r+")
    last = len(queries) if stop_after_rows is None else min(len(queries), done + stop_after_rows)
    with tqdm(
        total=len(queries) * len(items),
        initial=done * len(items),
        unit="pair",
        desc="cross-encoder",
        disable=not progress,
    ) as bar:
        for row in range(done, last):
            q = queries[row]
            for start in range(0, len(items), chunk):
                block = items[start : start + chunk]
                matrix[row, start : start + len(block)] = score([(q, t) for t in block])
                bar.update(len(block))
            matrix.flush()
            atomic_write_json(record_path, {"key": key, "rows_done": row + 1, "shape": list(shape)})
    result = np.array(matrix)
    del matrix
    if last < len(queries):
        raise InterruptedError(f"stopped after {last} of {len(queries)} rows; call again to resume")
    return result


@dataclass
class CurFactors:
    """``E = pinv(R[:, anchors], rcond) · R``; ``rank`` is the numerical rank kept by the cut-off."""

    anchors: np.ndarray  # (k_i,) item positions
    E: np.ndarray  # (k_i, N) float32
    rank: int
    rcond: float


def fit_cur(R: np.ndarray, anchors: np.ndarray, rcond: float = 1e-3) -> CurFactors:
    """Solve for ``E`` from the anchor-query score matrix ``R`` and the anchor items' positions.

    ``rcond`` is the rank cut-off: singular values of ``R[:, anchors]`` below ``rcond`` × the largest are
    treated as zero, which keeps noise in near-dependent anchor columns from being amplified.
    """
    R64 = np.asarray(R, dtype=np.float64)
    A = R64[:, anchors]
    singular = np.linalg.svd(A, compute_uv=False)
    rank = int(np.sum(singular > rcond * singular[0])) if singular.size and singular[0] > 0 else 0
    U = np.linalg.pinv(A, rcond=rcond)
    return CurFactors(anchors=np.asarray(anchors), E=(U @ R64).astype(np.float32), rank=rank, rcond=rcond)


RCOND_GRID = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-6)


def choose_rcond(
    R: np.ndarray, anchors: np.ndarray, grid: Sequence[float] = RCOND_GRID, folds: int = 5, k: int = 10, seed: int = 0
) -> tuple[float, dict[float, float]]:
    """The rank cut-off that best predicts anchor queries left out of the fit (k-fold over the rows of
    ``R``): for each held-out row, the share of its exact top ``k`` found in the approximate top ``k``.

    Cross-encoder score matrices are dominated by a few directions (a query-independent document
    prior carries most of the energy), and the pseudo-inverse of a nearly singular ``R[:, anchors]``
    amplifies noise in the others; the right cut-off depends on the model and the corpus, so it is
    measured, not assumed. Returns the chosen value and the mean recall of every value tried."""
    rows = np.random.default_rng(seed).permutation(len(R))
    parts = [p for p in np.array_split(rows, min(folds, len(R))) if len(p)]
    scores: dict[float, float] = {}
    for rcond in grid:
        found = []
        for held in parts:
            fit_rows = np.setdiff1d(rows, held)
            if len(fit_rows) == 0:
                continue
            E = fit_cur(R[fit_rows], anchors, rcond=rcond).E
            for r in held:
                approx = approximate_scores(R[r, anchors], E)
                found.append(len(set(np.argsort(-approx)[:k]) & set(np.argsort(-R[r])[:k])) / k)
        scores[rcond] = float(np.mean(found)) if found else 0.0
    best = max(grid, key=lambda g: (scores[g], g))  # ties: the larger cut-off (the simpler model)
    return best, scores


def approximate_scores(c: np.ndarray, E: np.ndarray) -> np.ndarray:
    """``ŝ = c · E`` for one query's exact anchor scores ``c`` (k_i,)."""
    return np.asarray(c, dtype=np.float32) @ E


def adaptive_cur(
    score_items: Callable[[np.ndarray], np.ndarray],
    R: np.ndarray,
    first_anchors: np.ndarray,
    budget: int,
    rounds: int,
    rcond: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """ADACUR (Yadav et al., 2023): spend ``budget`` cross-encoder calls over ``rounds`` rounds; each round
    scores the current best approximate items exactly, adds them to the anchors and solves again.

    ``score_items(positions)`` returns exact scores for item positions. Returns the positions scored
    exactly and their scores (the caller ranks them); every call is counted in the budget.
    """
    anchors = list(map(int, first_anchors))
    exact = dict(zip(anchors, map(float, score_items(np.array(anchors))), strict=True))
    remaining = budget - len(anchors)
    if remaining < 0:
        raise ValueError(f"the budget {budget} is smaller than the {len(anchors)} first anchors")
    R64 = np.asarray(R, dtype=np.float64)
    for r in range(rounds):
        if remaining <= 0:
            break
        take = remaining // (rounds - r)
        cols = np.array(sorted(exact))
        approx = np.array([exact[i] for i in cols]) @ (np.linalg.pinv(R64[:, cols], rcond=rcond) @ R64)
        approx[cols] = -np.inf
        new = np.argsort(-approx)[:take]
        for pos, s in zip(new, score_items(new), strict=True):
            exact[int(pos)] = float(s)
        remaining -= len(new)
    positions = np.array(sorted(exact, key=lambda p: -exact[p]))
    return positions, np.array([exact[p] for p in positions], dtype=np.float32)
