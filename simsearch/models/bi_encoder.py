"""Bi-encoders: load a sentence-transformers model from a path and turn texts into unit vectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sentence_transformers import SentenceTransformer

from simsearch.models.files import model_hash
from simsearch.models.loading import ModelLoadError, flag_too_long, load_onnx, load_sentence_transformer, use_threads
from simsearch.models.onnx import Backend, OnnxRunner, run_batched
from simsearch.whitening.model_io import read_whitening


@dataclass
class BiEncoder:
    """A sentence-transformers model plus what identifies it (path and weights hash).

    Embeddings are L2-normalised float32, so the inner product is the cosine similarity. With an ONNX
    backend the same tokenizer feeds an ONNX Runtime session of the whole model instead of torch.
    """

    model: SentenceTransformer
    path: str
    sha256: str
    batch_size: int = 32
    whitening: dict[str, Any] | None = None  # parameters, when the model folder holds a fitted whitening
    backend: Backend = "torch"
    onnx: OnnxRunner | None = None
    _dim: int = field(init=False)

    def __post_init__(self) -> None:
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ModelLoadError(f"model {self.path!r} does not report its embedding dimension")
        self._dim = int(dim)

    @classmethod
    def load(
        cls,
        path: str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        backend: Backend = "torch",
        threads: int | None = None,
    ) -> BiEncoder:
        model = load_sentence_transformer(path, device)
        model.eval()
        onnx = load_onnx(model, path, "bi", backend, threads)
        return cls(
            model=model,
            path=path,
            sha256=model_hash(path),
            batch_size=batch_size,
            whitening=read_whitening(path),
            backend=backend if onnx is not None else "torch",  # torch when the export cannot be used
            onnx=onnx,
        )

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_seq_length(self) -> int:
        length = self.model.max_seq_length
        return int(length) if length is not None else int(self.model.tokenizer.model_max_length)

    def encode(
        self,
        texts: Sequence[str],
        *,
        prefix: str = "",
        progress: bool = False,
        batch_size: int | None = None,
        threads: int | None = None,
        max_tokens: int | None = None,
        lengths: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Encode texts to an ``(n, dim)`` float32 array of unit vectors. ``threads``: intra-op threads
        for this call (see :func:`use_threads`; default: the model's). ``max_tokens``: batches by a token
        budget instead of a count (bulk encoding: builds), from each text's real token count."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = [prefix + t for t in texts] if prefix else list(texts)
        size = batch_size or self.batch_size
        if max_tokens and lengths is None:
            lengths = self.token_counts(inputs)
        if self.onnx is not None:
            vectors = run_batched(self.onnx, self._tokenize, inputs, size, threads, lengths, max_tokens)
        else:
            use_threads(self.backend, threads)
            if progress:  # a long job: the library's loop, for its progress bar
                vectors = self.model.encode(inputs, batch_size=size, show_progress_bar=True, convert_to_numpy=True)
            else:
                vectors = run_batched(self._forward, self._preprocess, inputs, size, None, lengths, max_tokens)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _preprocess(self, texts: list[str]) -> dict[str, Any]:
        """The torch path's tokenisation: the model's own, with its default prompt as ``encode`` applies it."""
        default = self.model.default_prompt_name
        return dict(self.model.preprocess(texts, prompt=self.model.prompts.get(default) if default else None))

    def _forward(self, features: dict[str, Any], threads: int | None = None) -> np.ndarray:
        """The model's own forward pass on one tokenised batch, as ``SentenceTransformer.encode`` runs it
        (same modules, same vectors), without that method's fixed cost per call: it walks every parameter
        to find the device and every module to set eval mode, about 0.5 ms, and about 1 ms in all against
        a lone query's 12 to 15 ms on 2 cores (measured; the service's c = 1 latency, issue #20).
        ``threads`` is set by the caller (:func:`use_threads`)."""
        import torch

        if self.model.training:  # as encode does: dropout off, whatever a caller did to the model
            self.model.eval()
        device = next(self.model.parameters()).device  # the first parameter only: microseconds
        if device.type != "cpu":
            features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        with torch.inference_mode():
            out = self.model(features)["sentence_embedding"]
        return out.float().cpu().numpy()

    def _tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        return dict(
            self.model.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np"
            )
        )

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens as the model reads it (special tokens in, cut at the window)."""
        ids = self.model.tokenizer(list(texts), truncation=True, max_length=self.max_seq_length, verbose=False)
        return [len(row) for row in ids["input_ids"]]

    def truncated(self, texts: Sequence[str], *, prefix: str = "") -> list[bool]:
        """Which texts are longer than the model's window and will be cut to ``max_seq_length`` tokens."""
        return flag_too_long([prefix + t for t in texts], self.max_seq_length, self.model.tokenizer)
