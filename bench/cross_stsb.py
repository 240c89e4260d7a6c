"""STS-B (English) cross-encoders with the budget a cross-encoder needs: CoSENT against BCE at one budget.

    python -m bench.cross_stsb [--epochs 4 --batch-size 16 --lr 5e-5]

The packaged all-MiniLM-L6-v2 transformer with a fresh one-logit head, trained on the 5,749 STS-B train
pairs in both orders (a cross-encoder reads a pair as one sequence, so (b, a) is a second example with the
same label, as sentence-transformers' own STS-B cross-encoder example does), several epochs, warm-up,
20 dev evaluations, the best dev checkpoint kept. Test Spearman x100 on the 1,379 test pairs.

Writes bench/results/cross_stsb.json and cross_stsb.png (dev Spearman against steps, both losses).
Models are kept under models/bench/stsb-en/ (``cross-<loss>-e<epochs>``); finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS, model_label, write_result
from bench.training_runs import MODELS, plot_curves, summary, train_or_reuse
from simsearch.cli import settings_with
from training.recipe import TrainConfig

PUBLISHED = {
    "cross-encoder/stsb-TinyBERT-L4 (4 layers)": 85.50,
    "cross-encoder/stsb-distilroberta-base": 87.92,
    "BERT-base cross-encoder trained on STS-B": 88.77,
}
LOSSES = ("cosent", "bce")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="default: <SIMSEARCH_DATA_DIR>/stsb-en")
    p.add_argument("--model", help="base model (default: SIMSEARCH_BI_MODEL)")
    p.add_argument("--epochs", type=float, default=4.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--evals", type=int, default=20)
    p.add_argument("--only", choices=LOSSES, action="append")
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
        "warmup_ratio": args.warmup_ratio,
        "evals": args.evals,
        "both_orders": True,
    }
    reports = {}
    for loss in LOSSES:
        if args.only and loss not in args.only:
            continue
        cfg = TrainConfig(
            kind="cross",
            loss=loss,
            base_model=base,
            data=data,
            output=MODELS / "stsb-en",
            name=f"cross-{loss}-e{args.epochs:g}",
            **budget,
        )
        reports[loss] = train_or_reuse(cfg)
    base_name = model_label(base)
    cross = {loss: summary(r) for loss, r in reports.items()}
    # A loss left out with --only keeps its entry from the last file when that was measured at this same
    # budget and base: the runs take hours each, and the comparison is only meaningful at one budget.
    from simsearch.models.files import model_hash

    inputs = {"data": data.name, "base_model_sha256": model_hash(base)}
    previous = RESULTS / "cross_stsb.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        # the same budget, data set and base weights (files written before the hash was recorded: the same
        # base folder name)
        same_inputs = all(old.get(k) == v for k, v in inputs.items()) or (
            "base_model_sha256" not in old and old.get("base_model") == base_name
        )
        if old.get("budget") == budget and same_inputs:
            for loss, entry in old.get("cross", {}).items():
                if loss not in cross:
                    env = entry.get("from_earlier_run") or {k: old["environment"].get(k) for k in ("date", "commit")}
                    cross[loss] = {**entry, "from_earlier_run": env}
    cross = {loss: cross[loss] for loss in LOSSES if loss in cross}
    result: dict[str, Any] = {
        "benchmark": "STS-B English test (1,379 pairs), Spearman x100, cross-encoders from a fresh head",
        "budget": budget,
        "base_model": base_name,
        **inputs,
        "cross": cross,
        "published": PUBLISHED,
    }
    plot_curves(
        {"cross-encoder": {loss: r["dev_curve"] for loss, r in result["cross"].items()}},
        RESULTS / "cross_stsb.png",
        f"STS-B dev Spearman ({args.epochs:g} epochs, both orders, batch {args.batch_size}, lr {args.lr:g})",
        ymin=80,
    )
    path = write_result("cross_stsb", result)
    print(json.dumps({loss: r["test_spearman"] for loss, r in result["cross"].items()}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
