"""CUR approximation of a cross-encoder (ANNCUR) and its adaptive variant (ADACUR)."""

from simsearch.cur.adaptive import adaptive_cur
from simsearch.cur.anchors import select_anchor_items
from simsearch.cur.estimator import RCOND_GRID, CURApproximation
from simsearch.cur.score_matrix import matrix_key, progress_record, rows_done, score_matrix

__all__ = [
    "RCOND_GRID",
    "CURApproximation",
    "adaptive_cur",
    "matrix_key",
    "progress_record",
    "rows_done",
    "score_matrix",
    "select_anchor_items",
]
