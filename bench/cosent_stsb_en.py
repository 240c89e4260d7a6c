"""STS-B (English) test Spearman ×100: the base model, bi-encoders trained with CoSENT and with
CosineSimilarityLoss, cross-encoders trained with CoSENT and with BCE, all with one budget.

    python -m bench.cosent_stsb_en [--epochs 1 --batch-size 16 --lr 2e-5]

Writes bench/results/cosent_stsb_en.json and cosent_stsb_en.png (dev Spearman against steps).
Models are kept under models/bench/stsb-en/ (the cross-encoder is the one the CUR benchmark uses);
finished runs with the same configuration are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import RESULTS, model_label, write_result
from bench.training_runs import MODELS, plot_curves, summary, train_or_reuse
from simsearch.cli import settings_with
from training.recipe import TrainConfig

PUBLISHED = {
    "all-MiniLM-L6-v2 as is": 82.03,
    "SBERT-base (bert-base-nli) trained on STS-B, CosineSimilarityLoss": 84.67,
    "BERT-base cross-encoder trained on STS-B": 88.77,
}
PUBLISHED_BY_MODEL = {  # the base model as is, where it is not the default (MTEB's STSBenchmark test score)
    "all-mpnet-base-v2": {"all-mpnet-base-v2 as is (MTEB STSBenchmark)": 83.42},
}
RUNS = [("bi", "cosent"), ("bi", "cosine"), ("cross", "cosent"), ("cross", "bce")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="default: <SIMSEARCH_DATA_DIR>/stsb-en")
    p.add_argument("--model", help="base model (default: SIMSEARCH_BI_MODEL)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--scale", type=float, help="λ of CoSENT (default: 20 bi-encoder, 1 cross-encoder)")
    p.add_argument("--only", choices=[f"{k}.{loss}" for k, loss in RUNS], action="append")
    p.add_argument("--variant", help="a name for a run with another budget: its own models and result file")
    args = p.parse_args(argv)
    settings = settings_with()
    data = args.data or settings.data_dir / "stsb-en"
    base = args.model or settings.bi_model
    budget = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "max_length": args.max_length,
        "scale": args.scale,
        "warmup_ratio": 0.1,
        "evals": 10,
    }
    reports = {}
    for kind, loss in RUNS:
        if args.only and f"{kind}.{loss}" not in args.only:
            continue
        cfg = TrainConfig(
            kind=kind,
            loss=loss,
            base_model=base,
            data=data,
            output=MODELS / "stsb-en",
            name=f"{kind}-{loss}" + (f"-{args.variant}" if args.variant else ""),
            **budget,
        )
        reports[(kind, loss)] = train_or_reuse(cfg)
    result: dict = {
        "benchmark": "STS-B English test (1,379 pairs), Spearman x100",
        "budget": budget,
        "base_model": model_label(base),
        "bi": {},
        "cross": {},
        "published": PUBLISHED_BY_MODEL.get(model_label(base), PUBLISHED),
    }
    if ("bi", "cosent") in reports:
        r = reports[("bi", "cosent")]
        result["bi"]["base"] = {"test_spearman": r["test_spearman_before"], "dev_spearman": r["dev_spearman_before"]}
    for (kind, loss), r in reports.items():
        result[kind][loss] = summary(r)
    plot_curves(
        {
            kind: {loss: result[kind][loss]["dev_curve"] for loss in result[kind] if loss != "base"}
            for kind in ("bi", "cross")
            if result[kind]
        },
        RESULTS / f"cosent_stsb_en{'_' + args.variant if args.variant else ''}.png",
        f"STS-B dev Spearman during training: {model_label(base)}, {args.epochs:g} epoch, batch {args.batch_size}, "
        f"lr {args.lr:g}" + (f", CoSENT λ = {args.scale:g}" if args.scale else ""),
    )
    path = write_result("cosent_stsb_en" + (f"_{args.variant}" if args.variant else ""), result)
    print(json.dumps({k: {n: v.get("test_spearman") for n, v in result[k].items()} for k in ("bi", "cross")}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
