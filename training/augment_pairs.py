"""Silver pairs for a cross-encoder: the gold training pairs plus new pairs of the same sentences, labelled
by a teacher bi-encoder (Augmented SBERT run the other way round: the bi-encoder teaches the cross-encoder).

    python -m training.augment_pairs --data ../shared/data/stsb-en \
        --teacher models/bench/stsb-en/bi-cosine-e2 --neighbours 1 --random 2000 \
        --out cache/stsb-en-silver.tsv

Why: the packaged bi-encoder was trained on a billion sentence pairs, a cross-encoder built from it starts
with a fresh head and sees only the 5,749 gold pairs, and ends below the bi-encoder it came from. New pairs
of the training sentences, scored by a bi-encoder fine-tuned on the same gold labels, hand that knowledge
over. Only the training split's sentences are paired, and no pair of the dev or test split (in either
order) is produced: a sentence can be in two splits, a pair cannot leak.

For every distinct training sentence, its ``--neighbours`` nearest other sentences by the teacher's
embeddings (sentence-transformers' ``semantic_search``), plus ``--random`` seeded random pairs so the low end
of the scale is covered; pairs already in the gold set, dev or test pairs, and repeats in either order are
dropped. Whitespace runs become one space before sentences are compared. A silver
label is the teacher's cosine clipped to [0, 1] and put on the gold scale (``lo + cos · (hi − lo)``): for a
teacher trained with ``CosineSimilarityLoss`` on score / 5 that is its estimate of the score. A CoSENT
teacher only orders its cosines, so ``--calibrate isotonic`` fits the increasing map from its cosine to the
gold score on the gold training pairs and labels the silver pairs with it. Writes
``sentence1<TAB>sentence2<TAB>score<TAB>origin`` (gold or silver), the layout ``train_cross --train`` reads,
atomically.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.atomic import atomic_write_text
from simsearch.cli import fail
from simsearch.data.pairs import PairDataError, PairSet, read_pairs


def silver_pairs(
    sentences: list[str],
    embeddings: np.ndarray,
    known: list[PairSet],
    neighbours: int,
    n_random: int,
    seed: int,
) -> list[tuple[int, int, float]]:
    """``(i, j, cosine)`` for new pairs of distinct ``sentences`` (unit-norm ``embeddings``), nearest
    neighbours first; no pair of a ``known`` set (gold train, and the dev and test pairs) in either order."""
    from sentence_transformers.util import semantic_search

    seen = {frozenset((a, b)) for pairs in known for a, b in zip(pairs.a, pairs.b, strict=True)}
    out: list[tuple[int, int, float]] = []

    def add(i: int, j: int) -> None:
        key = frozenset((sentences[i], sentences[j]))
        if i != j and len(key) == 2 and key not in seen:
            seen.add(key)
            out.append((i, j, float(embeddings[i] @ embeddings[j])))

    if neighbours > 0:
        import torch

        vectors = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        hits = semantic_search(vectors, vectors, top_k=neighbours + 1)
        for i, row in enumerate(hits):
            for hit in [h for h in row if h["corpus_id"] != i][:neighbours]:
                add(i, int(hit["corpus_id"]))
    rng = random.Random(seed)
    wanted = len(out) + n_random
    for _ in range(n_random * 20):  # bounded: a tiny sentence list cannot hold that many new pairs
        if len(out) >= wanted:
            break
        add(rng.randrange(len(sentences)), rng.randrange(len(sentences)))
    return out


CALIBRATIONS = ("linear", "isotonic")


def label_map(gold: PairSet, gold_cosines: np.ndarray | None, calibrate: str) -> Callable[[np.ndarray], np.ndarray]:
    """From the teacher's cosine to a label on the gold scale. ``linear``: the cosine clipped to [0, 1] and put
    on the gold range (right for a teacher trained with CosineSimilarityLoss on score / 5). ``isotonic``: the
    increasing map that best fits the gold training pairs' scores from the teacher's cosines of the same
    pairs (scikit-learn's ``IsotonicRegression``), for a teacher whose cosines are not on the label's scale
    (CoSENT only orders them); gold and silver labels then compare within a batch. Neither reverses the
    teacher's order of two silver pairs; the isotonic map is a step function, so pairs whose cosines fall on
    one step get one label (a tie, which CoSENT reads as no order). It is fitted on pairs the teacher was
    trained on, where its cosines follow the gold scores more closely than on new pairs."""
    lo, hi = min(gold.scores), max(gold.scores)
    if calibrate == "linear":
        return lambda cos: lo + np.clip(cos, 0.0, 1.0) * (hi - lo)
    if calibrate == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        assert gold_cosines is not None
        fitted = IsotonicRegression(y_min=lo, y_max=hi, increasing=True, out_of_bounds="clip")
        fitted.fit(gold_cosines, np.asarray(gold.scores, dtype=np.float64))
        return lambda cos: np.asarray(fitted.predict(np.asarray(cos, dtype=np.float64)))
    raise ValueError(f"unknown calibration {calibrate!r}; choose from {CALIBRATIONS}")


def add_calibrate_argument(p: argparse.ArgumentParser) -> None:
    """``--calibrate``, for this job and the benchmarks that run it."""
    p.add_argument(
        "--calibrate",
        choices=CALIBRATIONS,
        default="linear",
        help="the teacher's cosine to a label: linear (a CosineSimilarityLoss teacher) or isotonic, fitted on the "
        "gold training pairs (a CoSENT teacher; default: %(default)s)",
    )


def to_tsv(
    gold: PairSet,
    sentences: list[str],
    silver: list[tuple[int, int, float]],
    to_label: Callable[[np.ndarray], np.ndarray],
) -> tuple[str, list[float]]:
    """The TSV text (quotes left alone, as the pair reader reads TSV) and the silver labels."""
    lines = ["sentence1\tsentence2\tscore\torigin"]
    for a, b, s in zip(gold.a, gold.b, gold.scores, strict=True):
        lines.append(f"{a}\t{b}\t{s!r}\tgold")
    cosines = np.array([cos for _, _, cos in silver], dtype=np.float64)
    labels = [float(v) for v in to_label(cosines)] if len(silver) else []
    for (i, j, _), label in zip(silver, labels, strict=True):
        lines.append(f"{sentences[i]}\t{sentences[j]}\t{label:.4f}\tsilver")
    return "\n".join(lines) + "\n", labels


def cleaned(pairs: PairSet) -> PairSet:
    """Whitespace runs made one space before anything is compared (tabs and newlines would break the TSV,
    and two spellings of one sentence would otherwise pair with each other)."""
    return PairSet([_clean(t) for t in pairs.a], [_clean(t) for t in pairs.b], pairs.scores, pairs.source, pairs.meta)


def held_out(data: Path) -> list[PairSet]:
    """The dev and test pairs of the data set, where it has them: silver pairs never repeat them."""
    out = []
    for split in ("dev", "test"):
        try:
            out.append(cleaned(read_pairs(data, split)))
        except PairDataError:
            continue  # a folder without that split
    return out


def _clean(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-augment-pairs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="pair data set folder (its train split is used)")
    p.add_argument("--teacher", required=True, help="a bi-encoder folder, best one fine-tuned on the same labels")
    p.add_argument("--neighbours", type=int, default=1, help="nearest other sentences paired with each sentence")
    p.add_argument("--random", type=int, default=2000, help="random pairs added")
    p.add_argument("--seed", type=int, default=42)
    add_calibrate_argument(p)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.neighbours < 0 or args.random < 0:
        fail("--neighbours and --random must be 0 or more")
    try:
        gold = cleaned(read_pairs(args.data, "train"))
        known = [gold, *held_out(args.data)]
    except (PairDataError, FileNotFoundError) as exc:
        fail(str(exc))
    from sentence_transformers import SentenceTransformer

    teacher = SentenceTransformer(args.teacher, device="cpu", local_files_only=True)
    sentences = gold.sentences()
    emb = teacher.encode(
        sentences, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=True
    )
    silver = silver_pairs(sentences, emb, known, args.neighbours, args.random, args.seed)
    gold_cosines = None
    if args.calibrate == "isotonic":
        index = {t: i for i, t in enumerate(sentences)}
        gold_cosines = np.array(
            [float(emb[index[a]] @ emb[index[b]]) for a, b in zip(gold.a, gold.b, strict=True)], dtype=np.float64
        )
    text, labels = to_tsv(gold, sentences, silver, label_map(gold, gold_cosines, args.calibrate))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    stats: dict[str, Any] = {
        "gold": len(gold),
        "held_out_pairs_excluded": sum(len(k) for k in known[1:]),
        "silver": len(silver),
        "sentences": len(sentences),
        "silver_label_quartiles": [round(float(q), 3) for q in np.quantile(labels or [0.0], [0.25, 0.5, 0.75])],
        "teacher": str(args.teacher),
        "neighbours": args.neighbours,
        "random": args.random,
        "seed": args.seed,
        "calibrate": args.calibrate,
    }
    print(json.dumps(stats))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
