"""Turn BEIR relevance judgements into cross-encoder training pairs with dense hard negatives.

    python -m training.mine_pairs --data ../shared/data/scifact --split train --index scifact \
        --negatives 4 --out cache/scifact-train-pairs.tsv

For each judged query: its relevant documents (label 1) and the ``--negatives`` best-ranked documents of
the dense index that are not judged relevant (label 0), skipping the first ``--skip`` hits (the likeliest
unjudged positives), ``--lexical-negatives`` of the BM25 index's (skipping as many), plus
``--random-negatives`` random documents. ``--titles N`` adds weak supervision from the corpus itself: for
N documents with a title, the title is a query whose positive is its own abstract (without the title) and
whose negatives are the dense and BM25 neighbours of the title. Writes ``query<TAB>document<TAB>label``
(the layout ``train_cross`` reads); with ``--dev-fraction`` a seeded share of the judged queries goes to a
second file for the dev set (title pairs are training only), and those queries with their judgements go
to a BEIR folder beside it (``<out>-heldout``, split ``heldout``) for fitting the rerank weight on queries
the cross-encoder did not train on.

``--teacher`` distils the bi-encoder into the labels: each label becomes ``2 · judgement + cosine`` (the
bi-encoder's cosine of query and document, in [−1, 1]). A loss that reads only the labels' order (CoSENT)
then learns judged above unjudged and, within each, the bi-encoder's ranking: every pair carries signal,
where 0/1 labels give a fresh head little to learn from (measured: BCE on 0/1 labels stayed at the base
rate). The dev file keeps the 0/1 judgements, so its Spearman is measured against the truth.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.atomic import atomic_write_text
from simsearch.cli import fail, settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.index import layout
from simsearch.serving.runtime import StartupError, load_runtime


def clean(text: str) -> str:
    return " ".join(text.split())  # tabs and newlines would break the TSV


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-mine-pairs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="BEIR folder")
    p.add_argument("--split", default="train")
    p.add_argument("--index", help="index of the same corpus (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--negatives", type=int, default=4)
    p.add_argument("--skip", type=int, default=0, help="dense hits to skip before taking negatives")
    p.add_argument("--random-negatives", type=int, default=0, help="also this many random documents per query")
    p.add_argument("--lexical-negatives", type=int, default=0, help="also this many BM25 hard negatives")
    p.add_argument("--titles", type=int, default=0, help="weak pairs: this many titles as queries")
    p.add_argument("--dev-fraction", type=float, default=0.0)
    p.add_argument("--teacher", action="store_true", help="labels 2·judgement + the bi-encoder's cosine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        runtime = load_runtime(settings_with(index_name=args.index), writable=False)
    except StartupError as exc:
        fail(str(exc))
    queries, qrels = load_queries(args.data), load_qrels(args.data, args.split)
    ids = sorted(q for q in qrels if q in queries)
    rng = random.Random(args.seed)
    rng.shuffle(ids)
    n_dev = int(len(ids) * args.dev_fraction)
    store = runtime.index.store
    doc_ids = store.ids()
    position = {d: i for i, d in enumerate(doc_ids)}
    vectors = runtime.encoder.encode([queries[q] for q in ids], prefix=runtime.pipeline.query_prefix)
    view = runtime.view
    # documents, each once, scored by its best passage (the ANN alone would give passages of a split build)
    hits = [view.dense(v, args.skip + args.negatives + 20) for v in vectors]
    depth = args.skip + args.lexical_negatives + 20

    def lexical_negatives(text: str, exclude: set[str]) -> list[int]:
        if not args.lexical_negatives:
            return []
        found = [p for p, _ in view.lexical(text, depth)[args.skip :]]
        return [p for p in found if doc_ids[p] not in exclude][: args.lexical_negatives]

    stored = DocumentVectors(runtime)  # memory-mapped: read only where --teacher asks
    rows: dict[str, list[str]] = {"train": [], "dev": []}
    for n, (q, found) in enumerate(zip(ids, hits, strict=True)):
        positives = [d for d, g in qrels[q].items() if g > 0 and d in position]
        negatives = [p for p, _ in found[args.skip :] if doc_ids[p] not in qrels[q]][: args.negatives]
        negatives += [p for p in lexical_negatives(queries[q], set(qrels[q])) if p not in negatives]
        if args.random_negatives:
            negatives += [
                p
                for p in rng.sample(range(len(doc_ids)), args.random_negatives + 5)
                if doc_ids[p] not in qrels[q] and p not in negatives
            ][: args.random_negatives]
        chosen = [(position[d], 1) for d in positives] + [(p, 0) for p in negatives]
        # what the cross-encoder reads of each at search time: the best passage after the title (the whole
        # document when it is not split)
        texts = view.candidate_texts([p for p, _ in chosen], vectors[n], queries[q])
        part = "dev" if n < n_dev else "train"
        labels: list[float] = [label for _, label in chosen]
        if args.teacher and part == "train":
            labels = teacher_labels(stored, vectors[n], [p for p, _ in chosen], labels)
        rows[part] += [f"{clean(queries[q])}\t{clean(t)}\t{label:g}" for t, label in zip(texts, labels, strict=True)]
    if args.titles:
        rows["train"] += title_pairs(runtime, args, rng, doc_ids, lexical_negatives)
    atomic_write_text(args.out, "\n".join(rows["train"]) + "\n")
    print(f"wrote {args.out}: {len(rows['train'])} pairs from {len(ids) - n_dev} queries")
    if n_dev:
        dev = args.out.with_name(args.out.stem + "-dev" + args.out.suffix)
        atomic_write_text(dev, "\n".join(rows["dev"]) + "\n")
        print(f"wrote {dev}: {len(rows['dev'])} pairs from {n_dev} queries")
        held_out = write_held_out(held_out_folder(args.out), ids[:n_dev], queries, qrels)
        print(f"wrote {held_out}: the {n_dev} dev queries as a BEIR folder (split {HELD_OUT!r})")
    runtime.close()
    return 0


HELD_OUT = "heldout"


def held_out_folder(out: Path) -> Path:
    return out.with_name(out.stem + "-" + HELD_OUT)


def write_held_out(folder: Path, ids: list[str], queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> Path:
    """The dev queries as a BEIR folder (``queries.jsonl``, ``qrels/heldout.tsv``): judged queries the
    cross-encoder never trained on, for measuring what depends on it, such as the rerank weight
    (``training.fit_rerank --data <folder> --split heldout``); a weight fitted on its own training
    queries trusts it more than it deserves."""
    atomic_write_text(folder / "queries.jsonl", "".join(json.dumps({"_id": q, "text": queries[q]}) + "\n" for q in ids))
    atomic_write_text(
        folder / "qrels" / f"{HELD_OUT}.tsv",
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q in ids for d, g in qrels[q].items()),
    )
    return folder


class DocumentVectors:
    """The build's stored vectors (every build keeps the encoder's output, memory-mapped), read per document:
    one row, or the run of rows of its passages when the build split it."""

    def __init__(self, runtime: Any) -> None:
        self.rows = np.load(runtime.index.path / layout.EMBEDDINGS_FILE, mmap_mode="r", allow_pickle=False)
        passages = runtime.index.passages
        self.owner = None if passages is None else np.ascontiguousarray(passages[:, 0])

    def of(self, position: int) -> np.ndarray:
        if self.owner is None:
            return np.asarray(self.rows[position : position + 1])
        first, end = np.searchsorted(self.owner, position, "left"), np.searchsorted(self.owner, position, "right")
        return np.asarray(self.rows[first:end])


def teacher_labels(
    stored: DocumentVectors, query: np.ndarray, positions: list[int], judged: list[float]
) -> list[float]:
    """``2 · judgement + cosine``: the judgement first, the bi-encoder's order within it (``--teacher``); a
    document split into passages has its best passage's cosine, the score dense search gives it."""
    cosine = []
    for p in positions:
        rows = stored.of(p)
        cosine.append(float((rows @ query / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query) + 1e-12)).max()))
    return [round(2 * j + c, 4) for j, c in zip(judged, cosine, strict=True)]


def title_pairs(
    runtime: Any, args: argparse.Namespace, rng: random.Random, doc_ids: list[str], lexical: Any
) -> list[str]:
    """Titles as queries for their own abstracts: the corpus supervising itself."""
    store = runtime.index.store
    titled = [p for p, d in store.iter_documents() if d.title.strip() and d.text.strip()]
    chosen = rng.sample(titled, min(args.titles, len(titled)))
    docs = store.get(chosen)
    vectors = runtime.encoder.encode([d.title for d in docs], prefix=runtime.pipeline.query_prefix)
    view = runtime.view
    stored = DocumentVectors(runtime)
    rows = []
    for pos, doc, vector in zip(chosen, docs, vectors, strict=True):
        negatives = [p for p, _ in view.dense(vector, args.negatives + 2) if p != pos][: args.negatives]
        negatives += [p for p in lexical(doc.title, {doc_ids[pos]}) if p not in negatives]
        labels = [1.0] + [0.0] * len(negatives)
        if args.teacher:
            labels = teacher_labels(stored, vector, [pos, *negatives], labels)
        # the positive without its title (the query), the best passage of a split one
        best = view.best_passages([pos], vector, doc.title)[0]
        rows.append(f"{clean(doc.title)}\t{clean(doc.text[best.start : best.end])}\t{labels[0]:g}")
        texts = view.candidate_texts(negatives, vector, doc.title)
        rows += [f"{clean(doc.title)}\t{clean(t)}\t{label:g}" for t, label in zip(texts, labels[1:], strict=True)]
    print(f"title pairs: {len(rows)} from {len(chosen)} titles")
    return rows


if __name__ == "__main__":
    sys.exit(main())
