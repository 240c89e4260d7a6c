"""A SciFact re-ranker that helps: what each step adds, measured on the test claims.

    python -m bench.reranker [--base models/bench/stsb-en/cross-bce-e4] [--titles 1000] [--max-length 128]
        [--loss cosent|bce] [--teacher | --no-teacher] [--cross-backend onnx-int8]

Steps, each reported on SciFact test (nDCG@10, Recall@100) through the search pipeline:
1. the first stages: dense, and hybrid as the collection fuses it (its measured fusion);
2. a cross-encoder trained on the train claims' judgements with dense and BM25 hard negatives and random
   ones, plus weak supervision from the corpus itself (titles as queries for their own abstracts),
   with the bi-encoder distilled into the labels (``--teacher``: 2 · judgement + its cosine, so CoSENT
   learns judged over unjudged and the bi-encoder's order within each) or the 0/1 judgements alone,
   CoSENT or BCE, starting from ``--base`` (a cross-encoder that already knows sentence similarity, e.g.
   the STS-B one of bench.cross_stsb, or the bi-encoder's transformer with a fresh head);
3. re-ranking the dense and the hybrid top ``k_r`` with it alone (w = 1);
4. blending it with the first stage by a weight measured on held-out claims (training.fit_rerank's method;
   w = 0 keeps the first stage), the setting the service uses.
Writes bench/results/reranker.json. The trained model is kept under models/bench/scifact/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_result
from bench.training_runs import MODELS, train_or_reuse
from simsearch.cli import settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.evaluation.rerank_fit import fit_rerank_weight
from simsearch.evaluation.retrieval import evaluate_beir
from simsearch.models.cross_encoder import CrossScorer
from simsearch.search import DirectModels, SearchParams
from simsearch.serving.runtime import load_runtime
from training.recipe import TrainConfig

CACHE = Path("cache") / "reranker"


class CachedScorer:
    """The cross-encoder with its scores kept per pair: the passes alone and blended (and the dense and
    hybrid candidate lists, which overlap) score the same pairs, and each pass costs minutes here."""

    def __init__(self, cross: Any) -> None:
        self.cross = cross
        self.scores: dict[tuple[str, str], float] = {}
        self.seconds = 0.0  # in the model, over the pairs scored (len(self.scores))

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        missing = list(dict.fromkeys(p for p in pairs if p not in self.scores))
        if missing:
            started = time.perf_counter()
            scores = self.cross.score(missing)
            self.seconds += time.perf_counter() - started
            self.scores.update(zip(missing, (float(x) for x in scores), strict=True))
        return np.array([self.scores[p] for p in pairs], dtype=np.float32)


def pairs_file(data: Path, args: argparse.Namespace) -> Path:
    out = CACHE / f"scifact-pairs-t{args.titles}{'-teacher' if args.teacher else ''}.tsv"
    if not out.is_file():
        from training.mine_pairs import main as mine

        mine(
            [
                *("--data", str(data), "--split", "train", "--index", "scifact"),
                *("--negatives", "4", "--skip", "3", "--lexical-negatives", "4", "--random-negatives", "2"),
                *("--titles", str(args.titles), "--dev-fraction", "0.1", "--out", str(out)),
                *(["--teacher"] if args.teacher else []),
            ]
        )
    return out


def bi_encoder_dev_spearman(dev: Path | None, settings: Any) -> float:
    """The bi-encoder's cosine on the same dev pairs, against the same 0/1 judgements: the level a
    cross-encoder distilled from it starts from (its own dev Spearman is only meaningful beside this)."""
    from scipy.stats import spearmanr

    from simsearch.data.pairs import read_pairs
    from simsearch.serving.runtime import job_model

    pairs = read_pairs(Path(str(dev)))
    loaded = job_model(settings)  # the collection's model, with its registry entry's prefixes
    a = loaded.model.encode(pairs.a, prefix=loaded.entry.query_prefix)
    b = loaded.model.encode(pairs.b, prefix=loaded.entry.document_prefix)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return round(100 * float(spearmanr(cosine, pairs.scores).statistic), 3)


def fit_folder(data: Path, pairs: Path, args: argparse.Namespace) -> tuple[Path, str]:
    """Where the blending weight is measured: the held-out claims of the pairs file (``--fit-on heldout``:
    judged, never trained on) or the first ``--fit-queries`` train claims (``train``: the cross-encoder's
    own training claims, on which it looks better than it is)."""
    from training.mine_pairs import HELD_OUT, clean, held_out_folder, write_held_out

    queries, qrels = load_queries(data), load_qrels(data, "train")
    if args.fit_on == HELD_OUT:
        folder = held_out_folder(pairs)
        if not folder.is_dir():  # pairs mined before mine_pairs wrote it: the dev file's claims
            dev = {line.split("\t", 1)[0] for line in pairs.with_name(pairs.stem + "-dev.tsv").read_text().splitlines()}
            write_held_out(folder, [q for q in sorted(qrels) if clean(queries.get(q, "")) in dev], queries, qrels)
        return folder, HELD_OUT
    ids = sorted(qrels)[: args.fit_queries]
    return write_held_out(CACHE / f"fit-train-{len(ids)}", ids, queries, qrels), HELD_OUT


def row(label: str, m: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = {
        "step": label,
        "ndcg@10": round(100 * m["ndcg@10"], 2),
        "recall@100": round(100 * m["recall@100"], 2),
        "cross_encoder_calls_per_query": m["cross_encoder_calls_per_query"],
        "ms_per_query": m["ms_per_query"],
        **extra,
    }
    print(json.dumps(out))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", help="the cross-encoder to start from (default: the bi-encoder with a fresh head)")
    p.add_argument("--titles", type=int, default=1000)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--k-r", type=int, default=100)
    p.add_argument(
        "--fit-queries", type=int, default=300, help="with --fit-on train: how many train claims (0: no blending)"
    )
    p.add_argument(
        "--fit-on",
        choices=["heldout", "train"],
        default="heldout",
        help="claims the blending weight is measured on: those held out of training, or train claims",
    )
    p.add_argument("--loss", choices=["cosent", "bce"], default="cosent")
    p.add_argument("--result", default="reranker", help="name of the result file under bench/results/")
    p.add_argument(
        "--teacher",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="distil the bi-encoder into the labels (2 · judgement + its cosine)",
    )
    p.add_argument(
        "--cross-backend",
        choices=["torch", "onnx", "onnx-int8"],
        help="runtime of the cross-encoder when re-ranking (default: the service's SIMSEARCH_BACKEND); "
        "the first stage keeps the service's",
    )
    p.add_argument("--first-stages", nargs="+", default=["dense", "hybrid"], choices=["dense", "hybrid"])
    args = p.parse_args(argv)
    settings = settings_with(index_name="scifact")
    data = settings.data_dir / "scifact"
    rows: list[dict[str, Any]] = []
    # 1. the first stages
    rt = load_runtime(settings, writable=False)
    for mode in ("dense", "hybrid"):
        rows.append(
            row(
                mode,
                evaluate_beir(
                    rt.pipeline, rt.view, rt.direct_models(), data, params=SearchParams(mode=mode), progress=False
                ),
            )
        )
    rt.close()
    # 2. the cross-encoder
    pairs = pairs_file(data, args)
    started = time.perf_counter()
    cfg = TrainConfig(
        kind="cross",
        loss=args.loss,
        base_model=args.base or settings.bi_model,
        train=pairs,
        dev=pairs.with_name(pairs.stem + "-dev.tsv"),
        output=MODELS / "scifact",
        name=f"reranker-t{args.titles}-L{args.max_length}-{args.loss}{'-teacher' if args.teacher else ''}",
        epochs=args.epochs,
        batch_size=16,
        lr=args.lr,
        max_length=args.max_length,
        evals=4,
        progress=False,
    )
    report = train_or_reuse(cfg)
    cross = str(cfg.output / (cfg.name or ""))
    training = {
        "pairs": report["data"]["train"]["pairs"],
        "seconds": report["seconds"],
        "dev_spearman": report["dev_spearman"],
        "wall_seconds_this_run": round(time.perf_counter() - started, 1),
    }
    training["dev_spearman_bi_encoder"] = bi_encoder_dev_spearman(cfg.dev, settings)
    # 3, 4. re-ranking alone and blended with the measured weight
    rt = load_runtime(settings_with(index_name="scifact", cross_model=cross), writable=False)
    fit_data, fit_split = fit_folder(data, pairs, args)
    weights = {}
    scorer = rt.cross
    if args.cross_backend:
        scorer = CrossScorer.load(cross, batch_size=settings.encode_batch_size, backend=args.cross_backend)
    cached = CachedScorer(scorer)
    models = DirectModels(rt.encoder, cached)
    for first in args.first_stages:
        alone = SearchParams(mode="rerank", candidates=first, k_r=args.k_r, rerank_weight=1.0)
        rows.append(
            row(
                f"rerank {first} top {args.k_r}, cross-encoder alone",
                evaluate_beir(rt.pipeline, rt.view, models, data, params=alone, progress=False),
            )
        )
        if not args.fit_queries:
            continue
        found = fit_rerank_weight(
            rt.pipeline, rt.view, models, fit_data, split=fit_split, candidates=first, k_r=args.k_r, progress=False
        )
        weights[first] = found
        blended = SearchParams(mode="rerank", candidates=first, k_r=args.k_r, rerank_weight=found["weight"])
        rows.append(
            row(
                f"rerank {first} top {args.k_r}, blended (w = {found['weight']})",
                evaluate_beir(rt.pipeline, rt.view, models, data, params=blended, progress=False),
                weight=found["weight"],
            )
        )
    rt.close()
    path = write_result(
        args.result,
        {
            "benchmark": "SciFact test (300 claims): first stages, and a cross-encoder re-ranking them",
            "parameters": {**vars(args), "base": args.base or "the bi-encoder with a fresh head"},
            "training": training,
            "weights": weights,
            "scoring": {
                "backend": args.cross_backend or settings.backend,
                "pairs": len(cached.scores),
                "seconds": round(cached.seconds, 1),
                "pairs_per_s": round(len(cached.scores) / max(cached.seconds, 1e-9), 1),
            },
            "dense_reference": 64.51,
            "rows": rows,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
