"""Whether a model's faster backend (ONNX fp32, ONNX int8) gives the vectors its reference gives: measured on a
collection's own text before it is used.

Agreement on a sample: the mean cosine between the two vectors of each text (documents, and queries made of
their first sentences), and recall@10: how many of the reference's top 10 documents for each query the
candidate's top 10 holds, both searching their own vectors exactly. A backend passes when both clear their
thresholds; the figures go into the collection's manifest beside the backend it was checked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simsearch.data.corpus import Document

MIN_COSINE = 0.99  # dynamic int8 measured 0.995-0.999 on SciFact, English and Chinese sentences
MIN_RECALL = 0.95
Encode = Callable[[list[str]], np.ndarray]


class BackendCheck(BaseModel):
    """The agreement of a candidate backend with the reference on a collection's sample."""

    model_config = ConfigDict(extra="forbid")
    backend: str
    reference: str
    documents: int
    queries: int
    mean_cosine: float = Field(description="Mean cosine between the reference's and the candidate's vectors.")
    min_cosine: float
    recall_at_10: float = Field(description="Share of the reference's top 10 the candidate finds, over queries.")
    passed: bool
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"mean_cosine": MIN_COSINE, "recall_at_10": MIN_RECALL}
    )


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?。！？])\s*", text.strip(), maxsplit=1)[0][:300]


def check_backend(
    docs: Sequence[Document],
    reference: Encode,
    candidate: Encode,
    *,
    backend: str,
    reference_name: str = "torch",
    queries: int = 200,
    document_prefix: str = "",
    query_prefix: str = "",
) -> BackendCheck:
    """Encode ``docs`` (and queries from their first sentences) with both; compare (module docstring)."""
    texts = [document_prefix + d.content() for d in docs]
    asked = [query_prefix + first_sentence(d.text) for d in docs[:queries] if d.text.strip()]
    ref_docs, cand_docs = reference(texts), candidate(texts)
    ref_q, cand_q = reference(asked), candidate(asked)
    cosines = np.concatenate([_paired(ref_docs, cand_docs), _paired(ref_q, cand_q)])
    k = min(10, len(docs))
    truth = np.argsort(-(ref_q @ ref_docs.T), axis=1)[:, :k]
    found = np.argsort(-(cand_q @ cand_docs.T), axis=1)[:, :k]
    recall = float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found, strict=True)])) if k else 1.0
    mean = float(cosines.mean())
    return BackendCheck(
        backend=backend,
        reference=reference_name,
        documents=len(texts),
        queries=len(asked),
        mean_cosine=round(mean, 5),
        min_cosine=round(float(cosines.min()), 5),
        recall_at_10=round(recall, 4),
        passed=mean >= MIN_COSINE and recall >= MIN_RECALL,
    )


def _paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.asarray((a * b).sum(axis=1), dtype=np.float64)


def encoder_for(path: str, backend: Any, **kwargs: Any) -> Encode:
    """A bi-encoder's ``encode`` on ``backend`` (the export is made if it is missing and the folder writable)."""
    from simsearch.models.bi_encoder import BiEncoder

    model = BiEncoder.load(path, backend=backend, **kwargs)
    if model.backend != backend:
        raise RuntimeError(f"model {path} cannot run on {backend}: its export could not be made or checked")
    return lambda texts: model.encode(texts)
