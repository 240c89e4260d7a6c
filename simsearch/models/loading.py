"""Loading models without a hub, and what the bi-encoder and the cross-encoder share: the ONNX session,
thread counts per call, and the cheap check of which texts are longer than the model's window."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sentence_transformers import SentenceTransformer

from simsearch.atomic import atomic_write_json
from simsearch.models.files import model_hash
from simsearch.models.onnx import Backend, ExportError, OnnxRunner, export, exported_from, onnx_path

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


PROBES = [
    "A man is playing a guitar.",
    "How do I reset my password?",
    "Vitamin D deficiency is associated with multiple sclerosis",
    "The stock market fell sharply on Monday after the announcement of new tariffs on imported steel.",
    "短い文",
    "x",
]
# ONNX fp32 must give the scores torch gives: embeddings within this of torch's (max absolute difference of
# unit vectors), cross-encoder logits within this times max(1, |logit|); else the model stays on torch
TOLERANCE = {"bi": 1e-4, "cross": 1e-3}
CHECK_FILE = "check.json"


def load_onnx(
    model: Any, path: str, kind: Literal["bi", "cross"], backend: Backend, threads: int | None
) -> OnnxRunner | None:
    """The ONNX Runtime session for ``backend``, exported once (under a lock, so two processes starting at
    once do it once) and checked against torch on :data:`PROBES`. ``None`` means torch: asked for, or the
    fallback, with one warning, when the export cannot be written or its scores differ from torch's."""
    if backend == "torch":
        return None
    file = onnx_path(path, backend)
    try:
        if file.is_file() and exported_from(path) != model_hash(path):
            # exports of other weights (the model was retrained into this folder, or exported before the
            # source was recorded): never serve them; export again, or stay on torch where that cannot be done
            if not os.access(file.parent, os.W_OK):
                raise ExportError(f"{file.parent} holds exports of other weights than {path} and is read-only")
            log.warning("the ONNX exports in %s are of other weights than %s: exporting again", file.parent, path)
            with _export_lock(file.parent):
                if exported_from(path) != model_hash(path):
                    export(model, path, kind)
        recorded = _recorded(file, kind)
        if file.is_file() and (backend != "onnx" or recorded is not None):  # exported and checked: read only
            check = recorded or {"ok": True}
        elif file.is_file() and not os.access(file.parent, os.W_OK):  # a read-only folder: check, record nothing
            check = check_export(model, kind, file, threads, record=False)
        else:
            with _export_lock(file.parent):
                if not file.is_file():
                    log.warning("exporting %s to ONNX (%s) once; later starts reuse it", path, file.parent)
                    export(model, path, kind)
                check = check_export(model, kind, file, threads) if backend == "onnx" else {"ok": True}
    except (ExportError, OSError) as exc:
        log.warning(
            "model %s stays on torch: its ONNX export cannot be written (%s); export it where the folder is "
            "writable with `python -m training.export_onnx --model %s --kind %s`",
            path,
            exc,
            path,
            kind,
        )
        return None
    if not check["ok"]:
        log.warning(
            "model %s stays on torch: ONNX differs from torch by %.2g on the probe sentences (tolerance %g)",
            path,
            check["max_difference"],
            check["tolerance"],
        )
        return None
    return OnnxRunner(file, threads)


@contextmanager
def _export_lock(folder: Path) -> Iterator[None]:
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".export.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a second process waits here, then finds the files exported
        yield


def _recorded(file: Path, kind: str) -> dict[str, Any] | None:
    """The check recorded for this very export file, if any."""
    record = file.parent / CHECK_FILE
    if not (record.is_file() and file.is_file()):
        return None
    found = json.loads(record.read_text())
    if found.get("file_mtime_ns") == file.stat().st_mtime_ns and found.get("kind") == kind:
        return dict(found)
    return None


def check_export(model: Any, kind: str, file: Path, threads: int | None, record: bool = True) -> dict[str, Any]:
    """Torch against the exported fp32 file on the probes, once per export (recorded beside it)."""
    found = _recorded(file, kind)
    if found is not None:
        return found
    stamp = file.stat().st_mtime_ns
    runner = OnnxRunner(file, threads)
    if kind == "bi":
        features = dict(model.tokenizer(PROBES, padding=True, truncation=True, return_tensors="np"))
        got = runner(features)
        got = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
        want = model.encode(PROBES, normalize_embeddings=True, convert_to_numpy=True)
        difference = float(np.max(np.abs(got - want)))
    else:
        import torch

        pairs = [(a, b) for a, b in zip(PROBES, PROBES[1:] + PROBES[:1], strict=True)]
        features = dict(
            model.tokenizer(
                [a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation=True, return_tensors="np"
            )
        )
        got = runner(features).reshape(-1)
        want = np.asarray(model.predict([list(p) for p in pairs], activation_fn=torch.nn.Identity())).reshape(-1)
        difference = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))
    result = {
        "kind": kind,
        "file_mtime_ns": stamp,
        "max_difference": difference,
        "tolerance": TOLERANCE[kind],
        "ok": difference <= TOLERANCE[kind],
        "probes": len(PROBES),
    }
    if record:
        atomic_write_json(file.parent / CHECK_FILE, result)
    return result


def use_threads(backend: Backend, threads: int | None) -> None:
    """Torch's intra-op thread count for the calling thread's next calls (OpenMP keeps it per thread, so
    batches running at once on different threads can each use their own). ONNX sessions take theirs in
    the call instead."""
    if backend == "torch" and threads:
        import torch

        torch.set_num_threads(threads)
