"""Long documents as passages: split at sentence or paragraph boundaries into pieces of at most
``passage_tokens`` tokens of the collection's own tokenizer, with ``overlap_tokens`` of overlap; a
document is then scored by its best passage (MaxP) and a hit shows that passage.

The splitting is ``semantic-text-splitter``'s (a maintained Rust splitter, used through its Python
binding): it counts tokens with the model's own Hugging Face tokenizer (a Rust ``tokenizers.Tokenizer``,
the one the model encodes with), goes down a hierarchy of boundaries (paragraphs, sentences, words, then
characters) only as far as a piece needs, returns character offsets into the original text, and handles
texts without spaces (Chinese) or without any boundary (one long run) by falling back to tokens and
characters. ``chonkie`` was the other candidate; it counts tokens the same way but returns token-level
chunks whose offsets we would have had to map back to characters ourselves.

A passage's model input is the document's title followed by the passage's text, so every passage keeps
what the document is about; ``passage_tokens`` counts the text's tokens (the title and the model's
special tokens come on top, and a collection's specification is refused when they do not fit the model's
window).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simsearch.api.spec import PassageSpec
from simsearch.data.corpus import Document

Span = tuple[int, int]  # character offsets [start, end) in a document's text


@dataclass(frozen=True)
class Passages:
    """The passages of a batch of documents: ``spans[i]`` are document ``i``'s, in order; ``inputs`` what the
    model reads for each passage, flattened in the same order."""

    spans: list[list[Span]]
    inputs: list[str]

    @property
    def counts(self) -> list[int]:
        return [len(s) for s in self.spans]


class PassageSplitter:
    """Splits documents for one collection. ``passage_tokens=None``: no splitting (one passage per document,
    its whole text, as the model reads it: cut at the model's window)."""

    def __init__(self, tokenizer: Any, passage_tokens: int | None, overlap_tokens: int = 0) -> None:
        self.passage_tokens = passage_tokens
        self.overlap_tokens = overlap_tokens
        self._tokenizer = _plain(tokenizer) if passage_tokens is not None else None
        self._splitters: dict[int, Any] = {}
        self._lock = threading.Lock()

    @property
    def spec(self) -> PassageSpec | None:
        """The passages this splitter makes (``None``: none, one per document)."""
        if self.passage_tokens is None:
            return None
        return PassageSpec.model_construct(tokens=self.passage_tokens, overlap=self.overlap_tokens)

    def _splitter(self, capacity: int) -> Any:
        from semantic_text_splitter import TextSplitter

        with self._lock:
            found = self._splitters.get(capacity)
            if found is None:
                overlap = min(self.overlap_tokens, capacity - 1)
                found = TextSplitter.from_huggingface_tokenizer(self._tokenizer, capacity, overlap=overlap)
                self._splitters[capacity] = found
            return found

    def spans(self, doc: Document) -> list[Span]:
        """The passages of one document (one span over the whole text when it fits, or when not splitting)."""
        text = doc.text
        if self.passage_tokens is None or self._tokenizer is None:
            return [(0, len(text))]
        if len(text.encode("utf-8")) <= self.passage_tokens:  # fewer bytes than tokens allowed: it fits
            return [(0, len(text))]
        found = [
            (start, start + len(chunk)) for start, chunk in self._splitter(self.passage_tokens).chunk_indices(text)
        ]
        return found or [(0, len(text))]

    def split(self, docs: Sequence[Document], prefix: str = "") -> Passages:
        spans = [self.spans(d) for d in docs]
        inputs = [
            prefix + passage_input(d, start, end)
            for d, doc_spans in zip(docs, spans, strict=True)
            for start, end in doc_spans
        ]
        return Passages(spans, inputs)


def passage_input(doc: Document, start: int, end: int) -> str:
    """What the model reads for one passage: the title, then the passage's text (the whole document's
    content when the passage is the whole text)."""
    text = doc.text[start:end]
    return f"{doc.title} {text}".strip() if doc.title else text


def _plain(tokenizer: Any) -> Any:
    """The model's fast tokenizer as a ``tokenizers.Tokenizer`` without truncation or padding (a
    sentence-transformers tokenizer truncates at the model's window: every count would stop there)."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    plain = Tokenizer.from_str(backend.to_str())
    plain.no_truncation()
    plain.no_padding()
    return plain


def spans_array(doc_keys: Sequence[int], spans: Sequence[Sequence[Span]]) -> np.ndarray:
    """Passages as rows ``(document key, start, end)``, int64 (what a build stores as ``passages.npy``)."""
    rows = [(k, s, e) for k, doc_spans in zip(doc_keys, spans, strict=True) for s, e in doc_spans]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)
