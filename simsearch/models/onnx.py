"""ONNX Runtime backends for the bi-encoder and the cross-encoder: fp32 and int8 (dynamic quantisation).

sentence-transformers' own ONNX backend needs ``optimum-onnx``, whose releases pin transformers < 4.58
and so cannot be installed beside sentence-transformers 6 / transformers 5 (huggingface/optimum-onnx
#114). We therefore export with ``torch.onnx.export`` and quantise with onnxruntime's own
``quantize_dynamic`` (MatMul weights, int8 per channel: the embedding tables stay fp32, which keeps
cosines within about 0.99 of fp32 where quantising every op drops them to about 0.93). The files live in
``<model>/onnx/`` beside the original weights, where sentence-transformers keeps its exports too; the
model hash (simsearch.models.files) ignores that folder, since it is the same model in another runtime.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simsearch.atomic import atomic_write_json
from simsearch.models.files import model_hash

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8")
ONNX_DIR = "onnx"
FILES: dict[str, str] = {"onnx": "model.onnx", "onnx-int8": "model_qint8.onnx"}
SOURCE_FILE = "source.json"  # the hash of the weights the exports were made from
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ExportError(RuntimeError):
    """The model cannot be exported or its export cannot be written."""


def onnx_path(model_folder: str, backend: Backend) -> Path:
    return Path(model_folder) / ONNX_DIR / FILES[backend]


def _input_names(tokenizer: Any) -> list[str]:
    sample = tokenizer(["a b"], return_tensors="np")
    return [k for k in INPUTS if k in sample]


def _wrap(model: Any, kind: str, names: list[str]) -> Any:
    import torch

    class BiGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    class CrossGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model[0].model  # the transformers sequence-classification model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, tensors, strict=True))).logits

    return (BiGraph() if kind == "bi" else CrossGraph()).eval()


def export(model: Any, model_folder: str, kind: Literal["bi", "cross"]) -> dict[str, Path]:
    """Write ``onnx/model.onnx`` and ``onnx/model_qint8.onnx`` for a loaded sentence-transformers model
    (``kind="bi"``) or ``CrossEncoder`` (``kind="cross"``). Each file appears atomically."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(model_folder) / ONNX_DIR
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot write {folder}: {exc}") from None
    names = _input_names(model.tokenizer)
    sample = model.tokenizer(["an example sentence", "another"], padding=True, return_tensors="pt")
    out = {"bi": "sentence_embedding", "cross": "logits"}[kind]
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        fp32 = Path(tmp) / FILES["onnx"]
        with torch.no_grad():
            torch.onnx.export(
                _wrap(model, kind, names),
                tuple(sample[k] for k in names),
                str(fp32),
                input_names=names,
                output_names=[out],
                dynamic_axes={**{k: {0: "batch", 1: "seq"} for k in names}, out: {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        int8 = Path(tmp) / FILES["onnx-int8"]
        quantize_dynamic(
            str(fp32), str(int8), op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8
        )
        for backend, path in (("onnx", fp32), ("onnx-int8", int8)):
            os.replace(path, folder / FILES[backend])
    atomic_write_json(folder / SOURCE_FILE, {"model_sha256": model_hash(model_folder)})
    return {b: folder / f for b, f in FILES.items()}


def exported_from(model_folder: str) -> str | None:
    """The weights hash the folder's exports were made from (None: not recorded, an export older than the
    record). A model retrained into the same folder keeps its old exports beside new weights: compare."""
    record = Path(model_folder) / ONNX_DIR / SOURCE_FILE
    try:
        return str(json.loads(record.read_text())["model_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class OnnxRunner:
    """ONNX Runtime sessions of one model file; features in, first output out.

    One session per intra-op thread count asked for (``threads`` in a call; ``None``: the default given
    at construction), made once. A session's ``run`` is safe to call from several threads at once, so
    concurrent batches on one-thread sessions each get a core of their own (see simsearch.serving.batching)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = path
        self.threads = threads
        self.sessions: dict[int | None, Any] = {}
        self._lock = threading.Lock()
        self.names = [i.name for i in self._session(threads).get_inputs()]

    def _session(self, threads: int | None) -> Any:
        found = self.sessions.get(threads)
        if found is not None:
            return found
        import onnxruntime as ort

        with self._lock:
            if threads not in self.sessions:
                options = ort.SessionOptions()
                if threads:
                    options.intra_op_num_threads = threads
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                self.sessions[threads] = ort.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
            return self.sessions[threads]

    def __call__(self, features: dict[str, np.ndarray], threads: int | None = None) -> np.ndarray:
        session = self._session(self.threads if threads is None else threads)
        return session.run(None, {k: features[k].astype(np.int64) for k in self.names})[0]


def run_batched(
    runner: Callable[[dict[str, Any], int | None], np.ndarray],
    tokenize: Any,
    items: list[Any],
    batch_size: int,
    threads: int | None = None,
    lengths: Sequence[int] | None = None,
    max_tokens: int | None = None,
) -> np.ndarray:
    """Run ``items`` through ``runner`` in batches of similar length (less padding), in input order. With
    ``lengths`` (each item's tokens) and ``max_tokens``, a batch holds as many items as fit the token budget
    (padded to its longest), and at most ``batch_size`` of them: few long texts at once, up to ``batch_size``
    short ones; else ``batch_size`` items."""
    sizes = lengths if lengths is not None else [len(str(x)) for x in items]
    order = np.argsort([-s for s in sizes], kind="stable")
    outputs: list[np.ndarray] = [np.empty(0)] * len(items)
    for idx in _batches(order, sizes, batch_size, max_tokens if lengths is not None else None):
        result = runner(tokenize([items[i] for i in idx]), threads)
        for j, i in enumerate(idx):
            outputs[i] = result[j]
    return np.stack(outputs)


def _batches(order: np.ndarray, sizes: Sequence[int], batch_size: int, max_tokens: int | None) -> list[np.ndarray]:
    if max_tokens is None:
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    out, start = [], 0
    while start < len(order):
        longest = max(1, int(sizes[order[start]]))  # sorted longest first: the batch's padded length
        count = max(1, min(len(order) - start, max_tokens // longest, batch_size))
        out.append(order[start : start + count])
        start += count
    return out
