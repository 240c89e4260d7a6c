"""The expensive part of CUR: exact cross-encoder scores of queries against every item, resumable.

:func:`score_matrix` computes the matrix row by row into a memory-mapped ``.npy`` file with a progress
record, so an interrupted run resumes where it stopped and gives the same result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from simsearch.atomic import atomic_write_json

Scorer = Callable[[list[tuple[str, str]]], np.ndarray]  # pairs -> scores


def _key(parts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for p in parts:
        digest.update(p.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def progress_record(path: Path) -> Path:
    """Where :func:`score_matrix` records the rows of ``path`` it has finished."""
    return Path(path).with_suffix(".progress.json")


def matrix_key(model_key: str, queries: Sequence[str], items: Sequence[str]) -> str:
    """The hash a score matrix's record holds: the model and the exact queries and items it scores."""
    return _key([model_key, str(len(items)), *queries, _key(items)])


def rows_done(path: Path, key: str | None = None) -> int:
    """Rows of the score matrix at ``path`` finished so far by its last run (0 when it has no record, or,
    with ``key`` (:func:`matrix_key`), when the record is of other inputs, which a run would start over)."""
    record = progress_record(path)
    if not (Path(path).is_file() and record.is_file()):
        return 0
    saved = json.loads(record.read_text())
    return int(saved.get("rows_done", 0)) if key is None or saved.get("key") == key else 0


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
    key = matrix_key(model_key, queries, items)
    shape = (len(queries), len(items))
    done = rows_done(path, key)
    if done == 0:
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
