"""Cross-encoders: a model that reads both texts together and returns one relevance score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sentence_transformers import CrossEncoder

from simsearch.models.files import model_hash
from simsearch.models.loading import (
    SPECIAL_TOKENS_MARGIN,
    ModelLoadError,
    flag_too_long,
    is_local,
    load_onnx,
    use_threads,
)
from simsearch.models.onnx import Backend, OnnxRunner, run_batched


@dataclass
class CrossScorer:
    """A trained one-output ``CrossEncoder``. Scores are raw logits: higher means more similar, comparable
    across pairs of one model (CoSENT-trained logits are unbounded, so no sigmoid is applied)."""

    model: CrossEncoder
    path: str
    sha256: str
    batch_size: int = 32
    backend: Backend = "torch"
    onnx: OnnxRunner | None = None

    @classmethod
    def load(
        cls,
        path: str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        backend: Backend = "torch",
        threads: int | None = None,
    ) -> CrossScorer:
        local = is_local(path, "cross-encoder")
        try:
            model = CrossEncoder(path, device=device, local_files_only=local)
        except Exception as exc:  # the library raises many types
            raise ModelLoadError(f"cannot load cross-encoder {path!r}: {type(exc).__name__}: {exc}") from exc
        if model.num_labels != 1:
            raise ModelLoadError(f"cross-encoder {path!r} has {model.num_labels} outputs; one score is needed")
        model.eval()
        onnx = load_onnx(model, path, "cross", backend, threads)
        return cls(
            model=model,
            path=path,
            sha256=model_hash(path),
            batch_size=batch_size,
            backend=backend if onnx is not None else "torch",  # torch when the export cannot be used
            onnx=onnx,
        )

    @property
    def max_seq_length(self) -> int:
        length = self.model.max_seq_length
        return int(length) if length is not None else int(self.model.tokenizer.model_max_length)

    def score(
        self, pairs: Sequence[tuple[str, str]], *, progress: bool = False, threads: int | None = None
    ) -> np.ndarray:
        """One float32 score per ``(a, b)`` pair, in order. ``threads``: intra-op threads for this call."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        if self.onnx is not None:
            logits = run_batched(self.onnx, self._tokenize, list(pairs), self.batch_size, threads)
            return np.asarray(logits, dtype=np.float32).reshape(-1)
        use_threads(self.backend, threads)
        inputs: Any = [list(p) for p in pairs]
        scores = self.model.predict(
            inputs,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
        )
        return np.asarray(scores, dtype=np.float32).reshape(-1)

    def _tokenize(self, pairs: list[tuple[str, str]]) -> dict[str, np.ndarray]:
        return dict(
            self.model.tokenizer(
                [a for a, _ in pairs],
                [b for _, b in pairs],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
        )

    def clip(self, text: str) -> str:
        """``text`` cut to the tokens the model can read of it as the first text of a pair: a long query is
        tokenised once here instead of once for every pair it is scored against (a query of 8,192
        characters against 500 documents would otherwise be tokenised 500 times for 250 tokens each)."""
        limit = self.max_seq_length - SPECIAL_TOKENS_MARGIN
        if len(text.encode("utf-8")) <= limit:  # every token covers at least one byte: nothing to cut
            return text
        encoded = self.model.tokenizer(
            text, add_special_tokens=False, truncation=True, max_length=limit, return_offsets_mapping=True
        )
        offsets = encoded["offset_mapping"]
        return text[: offsets[-1][1]] if offsets else text

    def truncated(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Which pairs are longer together than the model's window and will be cut."""
        return flag_too_long([tuple(p) for p in pairs], self.max_seq_length, self.model.tokenizer)
