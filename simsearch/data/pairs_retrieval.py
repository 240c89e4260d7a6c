"""A duplicate-question retrieval set made from a sentence-pair set (LCQMC, ATEC, PAWS-X, BQ: ``s1 TAB s2
TAB label``), in BEIR layout, so a Chinese collection can be built, searched and evaluated like any other.

Queries: the first sentences of the positive pairs. Corpus: the second sentences of the positive pairs and
both sentences of the negative pairs (the hard distractors the sets were made with), each distinct text once.
A query's relevant document is its pair's second sentence. A corpus sentence that is exactly a query's text
is left out (it would be an unjudged exact match). Sampling is seeded, so the set is the same on every run.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path


def read_pairs(path: Path) -> list[tuple[str, str, int]]:
    pairs = []
    with Path(path).open(encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 3 and row[2].strip() in ("0", "1"):
                pairs.append((row[0].strip(), row[1].strip(), int(row[2])))
    return pairs


def pairs_to_beir(
    pairs_file: Path, out: Path, *, max_queries: int = 1000, max_documents: int | None = None, seed: int = 0
) -> dict[str, int]:
    """Write ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv`` (and, from a second half of the
    positive pairs, ``qrels/train.tsv``: judgments a fusion fit may use) under ``out``; return the counts."""
    pairs = [p for p in read_pairs(pairs_file) if p[0] and p[1] and p[0] != p[1]]
    rng = random.Random(seed)
    rng.shuffle(pairs)
    positives = [p for p in pairs if p[2] == 1][: 2 * max_queries]
    negatives = [p for p in pairs if p[2] == 0]
    queries: dict[str, str] = {}
    docs: dict[str, str] = {}  # text -> id
    qrels: dict[str, list[tuple[str, str]]] = {"test": [], "train": []}

    def doc_id(text: str) -> str:
        return docs.setdefault(text, f"d{len(docs)}")

    for i, (s1, s2, _) in enumerate(positives):
        if s1 in queries.values():
            continue
        qid = f"q{len(queries)}"
        queries[qid] = s1
        qrels["test" if i % 2 == 0 else "train"].append((qid, doc_id(s2)))
    asked = set(queries.values())
    for s1, s2, _ in negatives:  # distractors, up to max_documents in all (the answers always stay)
        for sentence in (s1, s2):
            if sentence not in asked and (max_documents is None or len(docs) < max_documents):
                doc_id(sentence)
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for sentence, key in docs.items():
            f.write(json.dumps({"_id": key, "text": sentence}, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in rows]
        (out / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"documents": len(docs), "queries": len(queries), "test": len(qrels["test"]), "train": len(qrels["train"])}
