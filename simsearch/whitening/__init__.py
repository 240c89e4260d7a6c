"""Whitening of sentence embeddings (BERT-whitening): the estimator, its model folder form, the grid."""

from simsearch.whitening.estimator import Whitening
from simsearch.whitening.grid import GRID_COMBOS, GRID_KS, grid_search
from simsearch.whitening.model_io import WHITENING_FILE, read_whitening, save_whitened, whitened_model

__all__ = [
    "GRID_COMBOS",
    "GRID_KS",
    "WHITENING_FILE",
    "Whitening",
    "grid_search",
    "read_whitening",
    "save_whitened",
    "whitened_model",
]
