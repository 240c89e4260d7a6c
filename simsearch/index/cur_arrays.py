"""The CUR arrays inside an index folder (``cur/``): what ``cur`` search mode needs, and nothing more.

On disk: ``anchors.npy`` (the anchor items' positions), ``U.npy`` (``pinv(R[:, anchors])``, to give new
documents their column of ``E`` without refitting), ``anchor_queries.json``, the ANN index over the
``N`` columns of ``E`` (maximum inner product: ``ŝ = c · E``; through the ANN registry like every vector
index), ``anchor_texts.json`` (what the cross-encoder reads for each anchor item: an anchor deleted from
the collection still defines ``E``, so its text is kept, and its position becomes -1 at compaction), and
``R.npy`` (the anchor-query scores, for compaction and refits; never loaded by the service).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsearch.ann import AnnIndex, backend, create_index
from simsearch.atomic import atomic_write_bytes, atomic_write_text
from simsearch.cur.estimator import CURApproximation
from simsearch.index.layout import CUR_DIR
from simsearch.index.manifest import CurInfo

FILES = {
    "anchors": "anchors.npy",
    "U": "U.npy",
    "R": "R.npy",
    "queries": "anchor_queries.json",
    "texts": "anchor_texts.json",
}
ANN_KIND = "faiss"


@dataclass
class CurColumns:
    """What ``cur`` search reads: the anchor items and the inner-product index over E's columns."""

    anchors: np.ndarray  # (k_i,) positions of the anchor items
    ann: AnnIndex  # maximum inner product over the N columns of E

    @classmethod
    def from_estimator(cls, cur: CURApproximation) -> CurColumns:
        return cls(anchors=cur.anchors_.astype(np.int64), ann=columns_index(cur.E_))

    @property
    def k_i(self) -> int:
        return int(self.anchors.shape[0])


@dataclass
class CurArrays(CurColumns):
    """The CUR arrays of an index build, with how they were fitted."""

    info: CurInfo
    U: np.ndarray  # (k_i, k_q): a new item's column is U · CE(anchor queries × item)
    anchor_queries: list[str]
    anchor_texts: list[str]


def columns_index(E: np.ndarray) -> AnnIndex:
    """Exact maximum inner product over the columns of ``E`` (k_i, N), through the ANN registry."""
    ann = create_index(ANN_KIND, E.shape[0], {"factory": "Flat"})
    ann.add(np.ascontiguousarray(E.T, dtype=np.float32))
    return ann


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def save_cur(
    folder: Path, cur: CURApproximation, R: np.ndarray, anchor_queries: list[str], anchor_texts: list[str]
) -> list[str]:
    """Write a fitted approximation into ``folder/cur``; return the relative paths written."""
    return save_cur_arrays(folder, cur.anchors_, cur.U_, cur.E_, R, anchor_queries, anchor_texts)


def save_cur_arrays(
    folder: Path,
    anchors: np.ndarray,
    U: np.ndarray,
    E: np.ndarray,
    R: np.ndarray,
    anchor_queries: list[str],
    anchor_texts: list[str],
) -> list[str]:
    """Write the arrays and the index over E's columns into ``folder/cur``; return the relative paths
    written. Every file is written to a new inode (atomically), never over a hard link that an older
    build shares."""
    out = Path(folder) / CUR_DIR
    out.mkdir(exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "anchors": np.asarray(anchors, dtype=np.int64),
        "U": np.asarray(U, dtype=np.float32),
        "R": np.asarray(R, dtype=np.float32),
    }
    for key, array in arrays.items():
        atomic_write_bytes(out / FILES[key], _npy(array))
    atomic_write_text(out / FILES["queries"], json.dumps(anchor_queries, ensure_ascii=False))
    atomic_write_text(out / FILES["texts"], json.dumps(anchor_texts, ensure_ascii=False))
    ann_file = columns_index(E).save(out)
    return [f"{CUR_DIR}/{name}" for name in (*FILES.values(), ann_file.name)]


def load_cur(folder: Path, info: CurInfo) -> CurArrays:
    base = Path(folder) / CUR_DIR
    anchors = np.load(base / FILES["anchors"], allow_pickle=False)
    U = np.load(base / FILES["U"], allow_pickle=False)
    queries = json.loads((base / FILES["queries"]).read_text(encoding="utf-8"))
    texts = json.loads((base / FILES["texts"]).read_text(encoding="utf-8"))
    if (
        anchors.shape != (info.k_i,)
        or U.shape != (info.k_i, info.k_q)
        or len(queries) != info.k_q
        or len(texts) != info.k_i
    ):
        raise ValueError(f"array shapes anchors {anchors.shape}, U {U.shape} do not match the manifest")
    ann = backend(ANN_KIND).load(base, info.k_i, {"factory": "Flat"})
    return CurArrays(anchors=anchors, ann=ann, info=info, U=U, anchor_queries=queries, anchor_texts=texts)
