"""The CUR arrays inside an index folder (``cur/``) and the inner-product index over the columns of E."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsearch.ann.faiss_index import FaissIndex
from simsearch.manifest import CurInfo

CUR_DIR = "cur"
FILES = {
    "E": "cur/E.npy",
    "R": "cur/R.npy",
    "anchors": "cur/anchors.npy",
    "queries": "cur/anchor_queries.json",
    "index": "cur/index.faiss",
}


@dataclass
class CurArrays:
    info: CurInfo
    E: np.ndarray  # (k_i, N): approximate scores are c · E
    R: np.ndarray  # (k_q, N): anchor queries x items, kept for re-solving (adaptive CUR)
    anchors: np.ndarray  # (k_i,) positions of the anchor items
    anchor_queries: list[str]
    ann: FaissIndex  # maximum inner product over the N columns of E

    @property
    def k_i(self) -> int:
        return int(self.E.shape[0])

    def candidates(self, c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and approximate scores of the ``k`` items with the largest ``c · E``."""
        scores, positions = self.ann.search(np.asarray(c, dtype=np.float32)[None, :], k)
        keep = positions[0] >= 0
        return positions[0][keep], scores[0][keep]


def save_cur(
    folder: Path, *, E: np.ndarray, R: np.ndarray, anchors: np.ndarray, anchor_queries: list[str]
) -> list[str]:
    """Write the arrays and the index into ``folder/cur``; return the relative paths written."""
    (Path(folder) / CUR_DIR).mkdir(exist_ok=True)
    for key, array in (("E", E.astype(np.float32)), ("R", R.astype(np.float32)), ("anchors", anchors.astype(np.int64))):
        with (Path(folder) / FILES[key]).open("wb") as f:
            np.save(f, array, allow_pickle=False)
    (Path(folder) / FILES["queries"]).write_text(json.dumps(anchor_queries, ensure_ascii=False), encoding="utf-8")
    ann = FaissIndex(E.shape[0], factory="Flat")
    ann.add(np.ascontiguousarray(E.T, dtype=np.float32))
    ann.save(Path(folder) / CUR_DIR)
    return list(FILES.values())


def load_cur(folder: Path, info: CurInfo) -> CurArrays:
    E = np.load(Path(folder) / FILES["E"], allow_pickle=False)
    R = np.load(Path(folder) / FILES["R"], allow_pickle=False)
    anchors = np.load(Path(folder) / FILES["anchors"], allow_pickle=False)
    queries = json.loads((Path(folder) / FILES["queries"]).read_text(encoding="utf-8"))
    if E.shape[0] != info.k_i or anchors.shape != (info.k_i,) or R.shape[0] != info.k_q:
        raise ValueError(f"array shapes E {E.shape}, R {R.shape}, anchors {anchors.shape} do not match the manifest")
    ann = FaissIndex.load(Path(folder) / CUR_DIR, info.k_i, {"factory": "Flat"})
    return CurArrays(info=info, E=E, R=R, anchors=anchors, anchor_queries=queries, ann=ann)
