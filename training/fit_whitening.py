"""Fit a whitening transform for a bi-encoder and save the whitened model as a new model folder.

    python -m training.fit_whitening --pairs ../shared/data/stsb-en --pairs-split test \
        --beta 1 --gamma 1 --k 256 --output models/minilm-w256
    python -m training.fit_whitening --corpus ../shared/data/scifact --grid \
        --val-beir ../shared/data/scifact --val-split train --output models/minilm-scifact-w

The sentences come from a corpus (BEIR or plain text), the texts of a pairs file, or both. The output
folder is the original model plus a ``Dense`` layer (weight W, bias −βμW) and ``Normalize``, so plain
sentence-transformers loads it; ``whitening.json`` records β, γ, k (index manifests copy it) and
``report.json`` the validation score of every point tried. ``--grid`` tries β, γ ∈ {0, 1} and
k ∈ {d, 256, 128, 64} and keeps the smallest k within ``--tolerance`` of the best validation score.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.atomic import atomic_write_json
from simsearch.cli import fail, settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import CorpusError, iter_documents, scan_corpus
from simsearch.data.pairs import PairDataError, read_pairs
from simsearch.evaluation.sts import ndcg_from_vectors, sts_spearman
from simsearch.models.bi_encoder import BiEncoder
from simsearch.serving.runtime import StartupError, load_encoder
from simsearch.whitening import Whitening, grid_search, save_whitened


def sentences_from(args: argparse.Namespace) -> tuple[list[str], list[str] | None, dict[str, Any]]:
    """The texts to fit on, the corpus ids when a corpus is one of the sources, and a description."""
    texts: list[str] = []
    doc_ids = None
    source: dict[str, Any] = {}
    if args.corpus:
        scan_corpus(args.corpus)
        docs = list(iter_documents(args.corpus))
        texts += [d.content() for d in docs]
        doc_ids = [d.id for d in docs]
        source["corpus"] = {"path": str(args.corpus), "documents": len(docs)}
    if args.pairs:
        pairs = read_pairs(args.pairs, args.pairs_split)
        sentences = pairs.sentences()
        texts += sentences
        source["pairs"] = {"path": pairs.source, "sentences": len(sentences)}
    if not texts:
        raise ValueError("give --corpus and/or --pairs: the sentences to fit the whitening on")
    return texts, doc_ids, source


def validator(
    args: argparse.Namespace, encoder: BiEncoder, corpus_vectors: np.ndarray | None, doc_ids: list[str] | None
) -> tuple[str, Callable[[Whitening | None], float]]:
    """The validation metric as a function of a fitted whitening (``None``: the model's own vectors)."""

    def apply(w: Whitening | None, x: np.ndarray) -> np.ndarray:
        return x if w is None else w.transform(x)

    if args.val_pairs:
        dev = read_pairs(args.val_pairs, args.val_split)
        a, b = encoder.encode(dev.a, progress=True), encoder.encode(dev.b, progress=True)
        return f"spearman x100 on {dev.source}", lambda w: sts_spearman(apply(w, a), apply(w, b), dev.scores)
    if args.val_beir:
        if corpus_vectors is None or doc_ids is None:
            raise ValueError("--val-beir needs --corpus (the documents to search)")
        split = args.val_split or ("dev" if (args.val_beir / "qrels" / "dev.tsv").is_file() else "train")
        qrels = load_qrels(args.val_beir, split)
        queries = load_queries(args.val_beir)
        qids = sorted(q for q in qrels if q in queries)
        q = encoder.encode([queries[i] for i in qids], prefix="")  # the model being whitened: no registry entry
        return (
            f"nDCG@10 x100 on {args.val_beir} ({split})",
            lambda w: ndcg_from_vectors(apply(w, corpus_vectors), doc_ids, apply(w, q), qids, qrels),
        )
    raise ValueError("--grid needs a validation set: --val-pairs (STS) or --val-beir (retrieval)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-fit-whitening", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", help="bi-encoder folder (default: SIMSEARCH_BI_MODEL)")
    p.add_argument("--corpus", type=Path, help="fit on this corpus (BEIR corpus.jsonl/folder or .txt)")
    p.add_argument("--pairs", type=Path, help="fit on the texts of this pairs file or data set folder")
    p.add_argument("--pairs-split", help="split of --pairs (train/dev/test)")
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--k", type=int, help="components kept (default: all)")
    p.add_argument("--grid", action="store_true", help="choose beta, gamma, k on a validation set")
    p.add_argument("--val-pairs", type=Path, help="STS validation pairs (Spearman)")
    p.add_argument("--val-beir", type=Path, help="BEIR validation folder (nDCG@10 over --corpus)")
    p.add_argument("--val-split", help="split of the validation set (BEIR default: dev, else train)")
    p.add_argument("--tolerance", type=float, default=0.5, help="points x100 below the best that still count")
    p.add_argument("--output", type=Path, required=True, help="folder for the whitened model")
    args = p.parse_args(argv)
    started = time.perf_counter()
    settings = settings_with(bi_model=args.model)
    try:
        # 1. the encoder and the sentences
        encoder = load_encoder(settings)
        texts, doc_ids, source = sentences_from(args)
        # 2. encode once (the expensive part)
        vectors = encoder.encode(texts, progress=True)
        corpus_vectors = vectors[: len(doc_ids)] if doc_ids else None
        # 3. fit one point, or every point of the grid and choose
        report: dict[str, Any] = {"model": encoder.path, "source": source, "sentences": len(texts)}
        if args.grid:
            metric, score = validator(args, encoder, corpus_vectors, doc_ids)
            search = grid_search(vectors, score, tolerance=args.tolerance)
            chosen = search["chosen"]
            report.update({"metric": metric, **search})
            if not search["beats_baseline"]:
                print(
                    f"note: the chosen whitening scores {chosen['score']:.2f} on {metric}, the model alone "
                    f"{search['baseline_score']:.2f}: it buys a smaller k, not quality",
                    file=sys.stderr,
                )
            whitening = Whitening(chosen["beta"], chosen["gamma"], chosen["k"]).fit(vectors)
        else:
            whitening = Whitening(args.beta, args.gamma, args.k).fit(vectors)
        # 4. save the model with its Dense + Normalize, and the report
        save_whitened(encoder.model, whitening, args.output, {"source": source})
        report.update({"whitening": whitening.describe(), "seconds": round(time.perf_counter() - started, 1)})
        atomic_write_json(args.output / "report.json", report)
    except (StartupError, CorpusError, PairDataError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    w = whitening.describe()
    print(
        f"saved {args.output}: beta={w['beta']:g} gamma={w['gamma']:g} k={w['k']} fitted on {w['fitted_on']} sentences"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
