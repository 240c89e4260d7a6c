"""A fitted whitening saved inside a sentence-transformers model folder, as ``Dense`` + ``Normalize``
modules, so the whitened model saves, loads and exports like any other model (never a pickle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sklearn.utils.validation import check_is_fitted

from simsearch.whitening.estimator import Whitening

WHITENING_FILE = "whitening.json"


def whitened_model(model: Any, whitening: Whitening) -> Any:
    """A copy of the sentence-transformers ``model`` with the whitening appended as ``Dense`` + ``Normalize``,
    so plain sentence-transformers loads it and its embeddings come out whitened."""
    import copy

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    check_is_fitted(whitening, "weight_")
    d, k = whitening.weight_.shape
    dense = Dense(
        d,
        k,
        bias=True,
        activation_function=None,
        init_weight=torch.tensor(whitening.weight_.T, dtype=torch.float32),
        init_bias=torch.tensor(whitening.bias_, dtype=torch.float32),
    )
    modules = [copy.deepcopy(m) for m in model]
    return SentenceTransformer(modules=[*modules, dense, Normalize()], device=str(model.device))


def save_whitened(model: Any, whitening: Whitening, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """Save the whitened model and ``whitening.json`` (the parameters, for index manifests)."""
    from simsearch.atomic import atomic_write_json

    whitened_model(model, whitening).save(str(folder))
    atomic_write_json(Path(folder) / WHITENING_FILE, {**whitening.describe(), **(extra or {})})
    return Path(folder)


def read_whitening(folder: str) -> dict[str, Any] | None:
    """The whitening parameters saved with a model folder, if any."""
    path = Path(folder) / WHITENING_FILE
    return json.loads(path.read_text()) if path.is_file() else None
