"""STS-B (English) bi-encoder taught by a larger one: the packaged MiniLM trained on the gold pairs plus new
pairs of the training sentences labelled by a fine-tuned teacher (Augmented SBERT, with a bi-encoder teacher).

    make mpnet
    python -m bench.cosent_stsb_en --model models/all-mpnet-base-v2 --only bi.cosent --only bi.cosine --scale 5 \
        --variant mpnet-scale5
    python -m bench.bi_distil --teacher models/bench/stsb-en/bi-cosent-mpnet-scale5 --calibrate isotonic \
        [--loss cosine] [--loss cosent]

Three steps, each reused when finished:
1. the teacher: a finished bi-encoder run on the same data (``--teacher``); trained with CoSENT, its cosines
   are put on the gold scale by ``--calibrate isotonic``;
2. the silver pairs (``training.augment_pairs``, the same file ``bench.cross_distil`` makes from this
   teacher): each training sentence with its nearest other training sentences, plus random pairs;
3. the students, one per ``--loss``: the packaged MiniLM trained on gold + silver with the sweep's best
   budget (2 epochs, batch 16, lr 2e-5, 10 dev evaluations, best dev kept; CoSENT with λ = 5).

Dev and test are the gold STS-B splits, never paired or labelled by the teacher. Writes
bench/results/bi_distil.json and bi_distil.png (dev curves; the teacher's and the best gold-only run's dev
levels drawn across).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS, model_label, write_result
from bench.cross_distil import given_teacher, silver_file
from bench.training_runs import MODELS, finished, plot_curves, summary, train_or_reuse
from simsearch.cli import settings_with
from training.augment_pairs import add_calibrate_argument
from training.recipe import TrainConfig

LOSSES = ("cosine", "cosent")
COSENT_SCALE = 5.0  # the sweep's best λ for this model (bench.cosent_sweep: 20 and 2 are worse)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="default: <SIMSEARCH_DATA_DIR>/stsb-en")
    p.add_argument("--model", help="the student's base model (default: SIMSEARCH_BI_MODEL)")
    p.add_argument("--teacher", type=Path, required=True, help="a finished bi-encoder run folder on the same data")
    p.add_argument("--loss", choices=LOSSES, action="append", help="losses to train (default: cosine)")
    p.add_argument("--neighbours", type=int, default=1)
    p.add_argument("--random", type=int, default=2000)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--evals", type=int, default=10)
    add_calibrate_argument(p)
    p.add_argument("--result", default="bi_distil", help="name of the result file and plot (default: bi_distil)")
    args = p.parse_args(argv)
    args.loss = args.loss or ["cosine"]
    settings = settings_with()
    data = args.data or settings.data_dir / "stsb-en"
    base = args.model or settings.bi_model

    teacher, teacher_path, teacher_name = given_teacher(args.teacher, data, args.calibrate)
    silver = silver_file(teacher_path, data, args.neighbours, args.random, args.seed, args.calibrate)
    students: dict[str, dict[str, Any]] = {}
    configs: dict[str, TrainConfig] = {}
    for loss in LOSSES:
        cfg = TrainConfig(
            kind="bi",
            loss=loss,
            base_model=base,
            data=data,
            train=silver,
            output=MODELS / "stsb-en",
            name=f"bi-{loss}-distil-n{args.neighbours}-r{args.random}-e{args.epochs:g}-t{teacher_name}"
            + ("" if args.calibrate == "linear" else f"-{args.calibrate}"),
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            max_length=128,
            scale=COSENT_SCALE if loss == "cosent" else None,
            warmup_ratio=0.1,
            evals=args.evals,
        )
        configs[loss] = cfg
        if loss in args.loss:
            students[loss] = train_or_reuse(cfg)
        elif (report := finished(cfg)) is not None:
            students[loss] = report

    gold_only: dict[str, Any] = {}  # the sweep's best run per loss (bench.cosent_sweep), for the default model
    if (RESULTS / "cosent_sweep.json").is_file() and base == settings.bi_model:
        gold_only = json.loads((RESULTS / "cosent_sweep.json").read_text()).get("best", {})
    train_pairs = next(iter(students.values()))["data"]["train"]["pairs"]
    result: dict[str, Any] = {
        "benchmark": "STS-B English test (1,379 pairs), Spearman x100: a bi-encoder taught by a larger bi-encoder",
        "teacher": {
            "run": teacher_name,
            "base_model": model_label(teacher["config"]["base_model"]),
            **summary(teacher),
        },
        "silver": {
            "file": silver.name,
            "neighbours": args.neighbours,
            "random": args.random,
            "seed": args.seed,
            "calibrate": args.calibrate,
        },
        "students": {
            loss: {"run": configs[loss].name, "train_pairs": r["data"]["train"]["pairs"], **summary(r)}
            for loss, r in students.items()
        },
        "base_model": model_label(base),
        "budget": {
            k: v
            for k, v in json.loads(configs["cosine"].model_dump_json()).items()
            if k not in ("data", "train", "base_model", "output", "progress", "loss", "name", "scale")
        },
        "cosent_scale": COSENT_SCALE,
        "best_gold_only_by_loss": gold_only,
    }
    curves = {f"student ({loss}, gold + silver)": r["dev_curve"] for loss, r in students.items()}
    levels = {f"teacher {model_label(teacher['config']['base_model'])} (dev {teacher['dev_spearman']:.1f})": (
        teacher["dev_spearman"])}  # fmt: skip
    if gold_only:  # the two losses' best runs sit within 0.1 on dev: one line
        top = max(run["dev_spearman"] for run in gold_only.values())
        levels[f"best gold-only MiniLM (dev {top:.1f})"] = top
    plot_curves(
        {"bi-encoder, dev Spearman": curves},
        RESULTS / f"{args.result}.png",
        f"STS-B bi-encoders taught by {teacher_name}: {train_pairs:,} training pairs (gold + silver)",
        ymin=85,
        levels=levels,
    )
    path = write_result(args.result, result)
    print(json.dumps({"teacher": teacher["test_spearman"], **{k: r["test_spearman"] for k, r in students.items()}}))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
