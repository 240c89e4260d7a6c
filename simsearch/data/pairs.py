"""Sentence-pair data sets: ``(text_a, text_b, score)`` rows, read from the layouts we meet.

- the STS Benchmark release: ``stsbenchmark.tsv.gz`` (or ``.tsv``) with a header
  ``split genre dataset year sid score sentence1 sentence2``, all splits in one file;
- the Chinese matching sets: ``{train,valid,test}.tsv`` with ``s1<TAB>s2<TAB>label`` and no header;
- a generic CSV, TSV or JSONL file with two texts and a score. A header names the columns
  (``sentence1``/``sentence2``/``score``, ``s1``/``s2``/``label``, ``text_a``/``text_b``/``label``...);
  without one, the first three columns are taken in that order.

Scores may be on any scale: CoSENT uses only their order, and the regression losses rescale them.
Every problem (a missing column, a label that is not a number, an empty file) is reported with its line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SPLIT_ALIASES = {"train": ("train",), "dev": ("dev", "valid", "validation"), "test": ("test",)}
TEXT_COLUMNS = [
    ("sentence1", "sentence2"),
    ("s1", "s2"),
    ("text_a", "text_b"),
    ("text1", "text2"),
    ("query", "document"),
    ("anchor", "positive"),
]
SCORE_COLUMNS = ["score", "label", "similarity", "gold"]


class PairDataError(ValueError):
    """A pair file that cannot be used, with the line that shows why."""


@dataclass
class PairSet:
    """Parallel lists of first texts, second texts and scores."""

    a: list[str]
    b: list[str]
    scores: list[float]
    source: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.scores)

    def subsample(self, n: int | None, seed: int = 0) -> PairSet:
        """A fixed random subset of ``n`` rows (the same for a given seed), or all rows."""
        if n is None or n >= len(self):
            return self
        rows = sorted(random.Random(seed).sample(range(len(self)), n))
        return PairSet(
            [self.a[i] for i in rows],
            [self.b[i] for i in rows],
            [self.scores[i] for i in rows],
            self.source,
            {**self.meta, "subsample": n, "subsample_seed": seed},
        )

    def sentences(self) -> list[str]:
        """Every distinct text, in first-seen order."""
        return list(dict.fromkeys(self.a + self.b))

    def is_binary(self) -> bool:
        return set(self.scores) <= {0.0, 1.0}

    def normalised_scores(self) -> list[float]:
        """Scores rescaled to [0, 1] (for cosine regression and BCE); an STS 0-5 score becomes score / 5."""
        lo, hi = min(self.scores), max(self.scores)
        if hi == lo:
            raise PairDataError(f"{self.source}: every score is {lo}; nothing to learn from")
        return [(s - lo) / (hi - lo) for s in self.scores]


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")  # noqa: SIM115 (the wrapper closes it)
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _number(value: str, line: int, path: Path) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PairDataError(f"{path.name} line {line}: label {value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise PairDataError(f"{path.name} line {line}: label {value!r} is not a finite number")
    return number


def _pick_columns(header: list[str], path: Path) -> tuple[int, int, int]:
    lower = [h.strip().lower() for h in header]
    for a, b in TEXT_COLUMNS:
        if a in lower and b in lower:
            for s in SCORE_COLUMNS:
                if s in lower:
                    return lower.index(a), lower.index(b), lower.index(s)
            raise PairDataError(f"{path.name} line 1: no score column (one of {SCORE_COLUMNS}) in header {header}")
    raise PairDataError(
        f"{path.name} line 1: header {header} has no pair of text columns "
        f"(one of {[f'{a}/{b}' for a, b in TEXT_COLUMNS]})"
    )


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of a delimited file (TSV unless the name says CSV), quotes left alone in TSV."""
    name = path.name.removesuffix(".gz")
    with _open_text(path) as f:
        reader = csv.reader(f) if name.endswith(".csv") else csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for fields in reader:
            if any(x.strip() for x in fields):
                yield reader.line_num, fields


def _looks_like_header(fields: list[str]) -> bool:
    lower = {x.strip().lower() for x in fields}
    return any(a in lower for a, _ in TEXT_COLUMNS) or bool(lower & set(SCORE_COLUMNS))


def _read_delimited(path: Path, split: str | None) -> PairSet:
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise PairDataError(f"{path.name}: the file is empty")
    a: list[str] = []
    b: list[str] = []
    scores: list[float] = []
    split_col = None
    wanted = SPLIT_ALIASES.get(split or "", (split,)) if split else None
    if _looks_like_header(first[1]):
        ia, ib, iscore = _pick_columns(first[1], path)
        header = [h.strip().lower() for h in first[1]]
        split_col = header.index("split") if "split" in header else None
        body = rows
    else:
        ia, ib, iscore = 0, 1, 2
        body = iter([first, *rows])
    if wanted and split_col is None:
        raise PairDataError(f"{path.name}: has no `split` column, so split {split!r} cannot be selected")
    need = max(ia, ib, iscore, split_col or 0) + 1
    for line, fields in body:
        if len(fields) < need:
            raise PairDataError(f"{path.name} line {line}: expected at least {need} columns, got {len(fields)}")
        if split_col is not None and wanted and fields[split_col].strip() not in wanted:
            continue
        text_a, text_b = fields[ia].strip(), fields[ib].strip()
        if not text_a or not text_b:
            raise PairDataError(f"{path.name} line {line}: empty text")
        a.append(text_a)
        b.append(text_b)
        scores.append(_number(fields[iscore].strip(), line, path))
    if not scores:
        raise PairDataError(f"{path.name}: no rows" + (f" in split {split!r}" if split else ""))
    return PairSet(a, b, scores, source=f"{path}" + (f":{split}" if split else ""))


def _read_jsonl(path: Path) -> PairSet:
    a: list[str] = []
    b: list[str] = []
    scores: list[float] = []
    columns: tuple[str, str, str] | None = None
    with _open_text(path) as f:
        for line, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise PairDataError(f"{path.name} line {line}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise PairDataError(f"{path.name} line {line}: expected a JSON object")
            if columns is None:  # the first record's keys name the columns
                keys = list(obj)
                ia, ib, iscore = _pick_columns(keys, path)
                columns = (keys[ia], keys[ib], keys[iscore])
            missing = [c for c in columns if c not in obj]
            if missing:
                raise PairDataError(f"{path.name} line {line}: missing {missing[0]!r}")
            text_a, text_b = obj[columns[0]], obj[columns[1]]
            if not isinstance(text_a, str) or not isinstance(text_b, str) or not text_a.strip() or not text_b.strip():
                raise PairDataError(f"{path.name} line {line}: texts must be non-empty strings")
            a.append(text_a.strip())
            b.append(text_b.strip())
            scores.append(_number(obj[columns[2]], line, path))
    if not scores:
        raise PairDataError(f"{path.name}: the file is empty")
    return PairSet(a, b, scores, source=str(path))


def read_pairs(path: Path, split: str | None = None) -> PairSet:
    """Read one split of a pair data set.

    ``path`` is a file, or a folder holding ``stsbenchmark.tsv.gz`` (then ``split`` picks the rows) or
    ``{train,valid,test}.tsv`` (then ``split`` picks the file; ``dev`` finds ``valid.tsv``).
    """
    path = Path(path)
    if path.is_dir():
        for name in ("stsbenchmark.tsv.gz", "stsbenchmark.tsv"):
            if (path / name).is_file():
                return _read_delimited(path / name, split or "train")
        for alias in SPLIT_ALIASES.get(split or "train", (split,)):
            for suffix in (".tsv", ".csv", ".jsonl"):
                if (path / f"{alias}{suffix}").is_file():
                    return read_pairs(path / f"{alias}{suffix}")
        raise PairDataError(f"{path}: no file for split {split!r} (looked for stsbenchmark.tsv.gz, {split}.tsv ...)")
    if not path.is_file():
        raise FileNotFoundError(f"pair file {path} does not exist")
    if path.name.removesuffix(".gz").endswith(".jsonl"):
        if split:
            raise PairDataError(f"{path.name}: a JSONL file holds one split; drop the split {split!r}")
        return _read_jsonl(path)
    return _read_delimited(path, split)
