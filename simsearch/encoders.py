"""Bi-encoders: load a sentence-transformers model from a path and turn texts into unit vectors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sentence_transformers import SentenceTransformer

from simsearch.model_files import model_hash
from simsearch.onnx_backend import Backend, ExportError, OnnxRunner, export, onnx_path, run_batched
from simsearch.whitening import read_whitening

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A model path that does not hold a loadable model."""


SPECIAL_TOKENS_MARGIN = 4  # [CLS] a [SEP] b [SEP], or <s> a </s></s> b </s>


def flag_too_long(texts: Sequence[Any], limit: int, tokenizer: Any) -> list[bool]:
    """Which texts (or ``(a, b)`` pairs) tokenise to more than ``limit`` tokens. Every token covers at least
    one byte of UTF-8, so a text with fewer bytes than the limit (less the special tokens) cannot be cut
    and is not tokenised: the common short query costs nothing."""

    def size(x: Any) -> int:
        return sum(len(t.encode("utf-8")) for t in x) if isinstance(x, tuple) else len(x.encode("utf-8"))

    flags = [False] * len(texts)
    long = [i for i, x in enumerate(texts) if size(x) + SPECIAL_TOKENS_MARGIN > limit]
    if long:
        items = [texts[i] for i in long]
        if isinstance(items[0], tuple):
            ids = tokenizer([a for a, _ in items], [b for _, b in items], truncation=False, verbose=False)
        else:
            ids = tokenizer(items, add_special_tokens=True, truncation=False, verbose=False)
        for i, row in zip(long, ids["input_ids"], strict=True):
            flags[i] = len(row) > limit
    return flags


def is_local(path: str, what: str = "model") -> bool:
    """True for an existing folder; a path that looks like a folder but is missing is an error, anything
    else is taken for a hub id (tried only where a hub is reachable)."""
    if Path(path).is_dir():
        return True
    if path.startswith(("/", ".", "~")) or Path(path).suffix:
        raise ModelLoadError(f"{what} folder {path!r} does not exist")
    return False


def load_sentence_transformer(path: str, device: str = "cpu") -> SentenceTransformer:
    """Load from a local folder without touching a hub; hub ids are tried only when no folder exists."""
    local = is_local(path)
    try:
        return SentenceTransformer(path, device=device, local_files_only=local)
    except Exception as exc:  # the library raises many types (OSError, ValueError, KeyError, ...)
        raise ModelLoadError(f"cannot load model {path!r}: {type(exc).__name__}: {exc}") from exc


def load_onnx(
    model: Any, path: str, kind: Literal["bi", "cross"], backend: Backend, threads: int | None
) -> OnnxRunner | None:
    """The ONNX Runtime session for ``backend`` (``None`` for torch), exporting the model first if needed."""
    if backend == "torch":
        return None
    file = onnx_path(path, backend)
    if not file.is_file():
        log.warning("exporting %s to ONNX (%s) once; later starts reuse it", path, file.parent)
        try:
            export(model, path, kind)
        except ExportError as exc:
            raise ModelLoadError(
                f"{exc}: export it where the folder is writable with "
                f"`python -m training.export_onnx --model {path} --kind {kind}`"
            ) from None
    return OnnxRunner(file, threads)


def use_threads(backend: Backend, threads: int | None) -> None:
    """Torch's intra-op thread count for the calling thread's next calls (OpenMP keeps it per thread, so
    batches running at once on different threads can each use their own). ONNX sessions take theirs in
    the call instead."""
    if backend == "torch" and threads:
        import torch

        torch.set_num_threads(threads)


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
        return cls(
            model=model,
            path=path,
            sha256=model_hash(path),
            batch_size=batch_size,
            whitening=read_whitening(path),
            backend=backend,
            onnx=load_onnx(model, path, "bi", backend, threads),
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
    ) -> np.ndarray:
        """Encode texts to an ``(n, dim)`` float32 array of unit vectors. ``threads``: intra-op threads
        for this call (see :func:`use_threads`; default: the model's)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = [prefix + t for t in texts] if prefix else list(texts)
        if self.onnx is not None:
            vectors = run_batched(self.onnx, self._tokenize, inputs, batch_size or self.batch_size, threads)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            return np.ascontiguousarray(vectors, dtype=np.float32)
        use_threads(self.backend, threads)
        vectors = self.model.encode(
            inputs,
            batch_size=batch_size or self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        return dict(
            self.model.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np"
            )
        )

    def truncated(self, texts: Sequence[str], *, prefix: str = "") -> list[bool]:
        """Which texts are longer than the model's window and will be cut to ``max_seq_length`` tokens."""
        return flag_too_long([prefix + t for t in texts], self.max_seq_length, self.model.tokenizer)
