"""Loading models without a hub, and what the bi-encoder and the cross-encoder share: the ONNX session,
thread counts per call, and the cheap check of which texts are longer than the model's window."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from sentence_transformers import SentenceTransformer

from simsearch.models.onnx import Backend, ExportError, OnnxRunner, export, onnx_path

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
