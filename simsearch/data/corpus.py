"""Reading corpora: BEIR ``corpus.jsonl`` or plain text (one document a line), validated line by line.

A corpus is read twice: :func:`scan_corpus` checks every line before any expensive encoding starts and
reports every problem it finds (up to a limit) with its line number; :func:`iter_documents` then streams
the documents, so a corpus larger than memory can be indexed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

CorpusFormat = Literal["auto", "beir", "text"]
MAX_REPORTED_ERRORS = 20
FIELDS = {"_id", "text", "title", "metadata"}


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] | None = None

    def content(self) -> str:
        """What the encoder reads: the title and the text, as BEIR evaluates dense retrievers."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


class CorpusError(ValueError):
    """A corpus that cannot be indexed; ``problems`` lists ``(line, message)`` pairs."""

    def __init__(self, path: Path, problems: list[tuple[int, str]], more: int = 0) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path.name} line {line}: {message}" for line, message in problems]
        if more:
            lines.append(f"... and {more} more problems")
        super().__init__(f"corpus {path} has {len(problems) + more} problem(s):\n" + "\n".join(lines))


def resolve_corpus(path: Path, fmt: CorpusFormat = "auto") -> tuple[Path, Literal["beir", "text"]]:
    """Find the file and its format: a BEIR folder or ``*.jsonl`` is BEIR; anything else is plain text."""
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    if fmt == "auto":
        fmt = "beir" if path.suffix == ".jsonl" else "text"
    return path, fmt


def _parse_beir(raw: str) -> Document:
    """Parse one ``corpus.jsonl`` line; raises ``ValueError`` with a message meant for the user."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    doc_id = obj.get("_id")
    if doc_id is None:
        raise ValueError('missing "_id"')
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
        raise ValueError(f'"_id" must be a string or an integer, got {type(doc_id).__name__}')
    doc_id = str(doc_id).strip()
    if not doc_id:
        raise ValueError('empty "_id"')
    unknown = sorted(set(obj) - FIELDS)
    if unknown:  # as the write API refuses them: a misspelt field is an error, not data silently dropped
        raise ValueError(
            f"document {doc_id!r}: unknown field {', '.join(map(repr, unknown))} (a line holds "
            '"_id", "text", "title" and "metadata"; put anything else in "metadata")'
        )
    text, title, metadata = obj.get("text"), obj.get("title", ""), obj.get("metadata")
    if not isinstance(text, str):
        raise ValueError(f'document {doc_id!r}: "text" must be a string, got {type(text).__name__}')
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise ValueError(f'document {doc_id!r}: "title" must be a string, got {type(title).__name__}')
    if not text.strip() and not title.strip():
        raise ValueError(f"document {doc_id!r}: empty text")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f'document {doc_id!r}: "metadata" must be an object, got {type(metadata).__name__}')
    return Document(id=doc_id, text=text, title=title, metadata=metadata)


def _parse_text(raw: str, line_no: int) -> Document:
    if not raw.strip():
        raise ValueError("empty text (a plain-text corpus holds one document a line)")
    return Document(id=str(line_no), text=raw.strip())


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    # Binary reads decoded line by line, so a bad byte is reported on the line that holds it.
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CorpusError(path, [(line_no, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")]) from None
            if line_no == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first document
            yield line_no, text.rstrip("\r\n")


def _documents(path: Path, fmt: Literal["beir", "text"]) -> Iterator[tuple[int, Document | ValueError]]:
    for line_no, raw in _lines(path):
        if fmt == "beir" and not raw.strip():
            continue  # blank lines between JSON records carry nothing
        try:
            yield line_no, (_parse_beir(raw) if fmt == "beir" else _parse_text(raw, line_no))
        except ValueError as exc:
            yield line_no, exc


def scan_corpus(path: Path, fmt: CorpusFormat = "auto") -> int:
    """Check every line; return the number of documents or raise :class:`CorpusError` naming lines."""
    path, resolved = resolve_corpus(path, fmt)
    problems: list[tuple[int, str]] = []
    more = 0
    first_seen: dict[str, int] = {}
    count = 0
    for line_no, item in _documents(path, resolved):
        if isinstance(item, Document):
            if item.id in first_seen:
                item = ValueError(f"duplicate id {item.id!r} (first seen on line {first_seen[item.id]})")
            else:
                first_seen[item.id] = line_no
                count += 1
        if isinstance(item, ValueError):
            if len(problems) < MAX_REPORTED_ERRORS:
                problems.append((line_no, str(item)))
            else:
                more += 1
    if problems:
        raise CorpusError(path, problems, more)
    if count == 0:
        raise CorpusError(path, [(0, "no documents")])
    return count


def iter_documents(path: Path, fmt: CorpusFormat = "auto") -> Iterator[Document]:
    """Stream documents in file order; call :func:`scan_corpus` first, this stops at the first problem."""
    path, resolved = resolve_corpus(path, fmt)
    for line_no, item in _documents(path, resolved):
        if isinstance(item, ValueError):
            raise CorpusError(path, [(line_no, str(item))])
        yield item
