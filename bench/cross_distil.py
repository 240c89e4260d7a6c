"""STS-B (English) cross-encoder taught by a fine-tuned bi-encoder: gold pairs plus teacher-labelled silver pairs.

    python -m bench.cross_distil [--loss cosent] [--loss bce] [--neighbours 1 --random 2000 --epochs 2]

Four steps, each reused when finished:
1. the teacher: the bi-encoder fine-tuned on STS-B with ``CosineSimilarityLoss`` over 2 epochs (the sweep's
   ``bi-cosine-e2`` run in models/bench/stsb-en/, so its cosine estimates score / 5), or ``--teacher``, a
   finished bi-encoder run on the same data (a larger model's, trained by ``bench.cosent_stsb_en --model``);
2. the silver pairs (``training.augment_pairs``): each training sentence with its nearest other training
   sentences, plus random pairs, labelled by the teacher; written to cache/stsb-en/;
3. the students, one per ``--loss`` (a finished run of the other loss at this budget is reported too): the
   packaged MiniLM with a fresh head, trained on gold + silver in both orders with the cross-encoder budget
   of ``bench.cross_stsb`` (lr 5e-5, warm-up 10 %, 20 dev evaluations, best dev kept);
4. the best student's score blended with its teacher's cosine (standardised, weight chosen on dev).

Dev and test are the gold STS-B splits, never paired or labelled by the teacher. Writes
bench/results/cross_distil.json and cross_distil.png (dev curves of the students beside the gold-only
cross-encoders of ``cross_stsb.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, model_label, write_result
from bench.training_runs import MODELS, finished, plot_curves, summary, train_or_reuse
from simsearch.cli import settings_with
from simsearch.data.pairs import PairSet
from training.augment_pairs import add_calibrate_argument
from training.recipe import TrainConfig, load_splits

CACHE = Path("cache") / "stsb-en"
LOSSES = ("cosent", "bce")


def teacher_config(base: str, data: Path, default_base: bool) -> TrainConfig:
    """The sweep's 2-epoch regression run (bench.cosent_sweep), so that one training serves both; from
    another base model its own folder, so the sweep's model is never overwritten."""
    return TrainConfig(
        kind="bi",
        loss="cosine",
        base_model=base,
        data=data,
        output=MODELS / "stsb-en",
        name="bi-cosine-e2" if default_base else f"bi-cosine-e2-{Path(base).name}",
        epochs=2.0,
        batch_size=16,
        lr=2e-5,
        seed=42,
        max_length=128,
        scale=None,
        warmup_ratio=0.1,
        evals=10,
    )


def silver_file(
    teacher: Path, data: Path, neighbours: int, n_random: int, seed: int, calibrate: str = "linear"
) -> Path:
    """The teacher-labelled pair file (``training.augment_pairs``), made once: named by the teacher's weights
    and the data, so a retrained teacher or other data make a new file (and the students, whose config names
    the file, are trained again)."""
    from simsearch.models.files import model_hash

    inputs = hashlib.sha256(f"{model_hash(str(teacher))}|{data.resolve()}".encode()).hexdigest()[:12]
    calibrated = "" if calibrate == "linear" else f"-{calibrate}"
    silver = CACHE / f"silver-{inputs}-n{neighbours}-r{n_random}-s{seed}{calibrated}.tsv"
    if not silver.is_file():
        from training.augment_pairs import main as augment

        augment(
            ["--data", str(data), "--teacher", str(teacher), "--neighbours", str(neighbours),
             "--random", str(n_random), "--seed", str(seed), "--calibrate", calibrate, "--out", str(silver)]
        )  # fmt: skip
    return silver


def given_teacher(folder: Path, data: Path, calibrate: str) -> tuple[dict[str, Any], Path, str]:
    """A finished bi-encoder run used as the teacher: its report, folder and name. It must have been trained
    and measured on the whole splits of the same data set, so its dev and test figures stand beside the
    students'; a CoSENT teacher's cosines are not on the label's scale, so its labels must be calibrated."""
    report_path = folder / "report.json"
    if not report_path.is_file():
        raise SystemExit(f"error: --teacher {folder}: no report.json (not a finished training run)")
    report = json.loads(report_path.read_text())
    config = report["config"]
    if config["kind"] != "bi":
        raise SystemExit(f"error: --teacher {folder}: a {config['kind']}-encoder run, not a bi-encoder")
    trained_on = config.get("data")
    if trained_on is None or Path(trained_on).resolve() != data.resolve():
        raise SystemExit(f"error: --teacher {folder} was trained on {trained_on}, not on {data}")
    other = [k for k in ("dev", "test", "dev_limit", "test_limit") if config.get(k) is not None]
    if other:
        raise SystemExit(f"error: --teacher {folder} was measured on other splits ({', '.join(other)} set)")
    if config["loss"] == "cosent" and calibrate == "linear":
        raise SystemExit(f"error: --teacher {folder} was trained with CoSENT: its cosines need --calibrate isotonic")
    return report, folder, folder.name


def blend(cross_path: Path, bi_path: Path, dev: PairSet, test: PairSet) -> dict[str, Any]:
    """The cross-encoder's score and the bi-encoder's cosine, each standardised by its dev mean and spread,
    mixed as ``w · cross + (1 − w) · bi`` with ``w`` chosen on dev (grid of 0.05): is the pair of models a
    better similarity scorer than either? Both as the service runs them (torch)."""
    from scipy.stats import spearmanr

    from simsearch.models.bi_encoder import BiEncoder
    from simsearch.models.cross_encoder import CrossScorer

    cross = CrossScorer.load(str(cross_path), batch_size=64)
    bi = BiEncoder.load(str(bi_path), batch_size=64)

    def scores(pairs: PairSet) -> tuple[np.ndarray, np.ndarray]:
        c = cross.score(list(zip(pairs.a, pairs.b, strict=True)))
        a, b = bi.encode(pairs.a), bi.encode(pairs.b)
        return c, np.sum(a * b, axis=1)

    (dc, db), (tc, tb) = scores(dev), scores(test)
    mc, sc, mb, sb = dc.mean(), dc.std(), db.mean(), db.std()

    def mixed(c: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
        return w * (c - mc) / sc + (1 - w) * (b - mb) / sb

    def rho(pairs: PairSet, values: np.ndarray) -> float:
        return round(100 * float(spearmanr(values, pairs.scores).statistic), 3)

    grid = [round(0.05 * i, 2) for i in range(21)]
    on_dev = {w: rho(dev, mixed(dc, db, w)) for w in grid}
    best = max(grid, key=lambda w: (on_dev[w], -abs(w - 0.5)))
    return {
        "weight_on_cross": best,
        "dev_spearman": on_dev[best],
        "dev_is_optimistic": "dev chose the weight and both models' kept checkpoints",
        "test_spearman": rho(test, mixed(tc, tb, best)),
        "test_cross_alone": rho(test, tc),
        "test_bi_alone": rho(test, tb),
        "dev_by_weight": on_dev,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="default: <SIMSEARCH_DATA_DIR>/stsb-en")
    p.add_argument("--model", help="base model (default: SIMSEARCH_BI_MODEL)")
    p.add_argument("--loss", choices=LOSSES, action="append", help="losses to train (default: cosent)")
    p.add_argument("--neighbours", type=int, default=1)
    p.add_argument("--random", type=int, default=2000)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--evals", type=int, default=20)
    p.add_argument(
        "--teacher",
        type=Path,
        help="a finished bi-encoder run folder (with report.json) on the same data, e.g. a larger model's "
        "trained by bench.cosent_stsb_en --model (default: the base model fine-tuned with CosineSimilarityLoss, "
        "2 epochs)",
    )
    add_calibrate_argument(p)
    p.add_argument("--result", default="cross_distil", help="name of the result file and plot (default: cross_distil)")
    args = p.parse_args(argv)
    args.loss = args.loss or ["cosent"]
    settings = settings_with()
    data = args.data or settings.data_dir / "stsb-en"
    base = args.model or settings.bi_model

    # 1. the teacher
    if args.teacher is not None:
        teacher, teacher_path, teacher_name = given_teacher(args.teacher, data, args.calibrate)
    else:
        teacher_cfg = teacher_config(base, data, default_base=base == settings.bi_model)
        teacher = train_or_reuse(teacher_cfg)
        teacher_path, teacher_name = teacher_cfg.output / str(teacher_cfg.name), str(teacher_cfg.name)
    # 2. the silver pairs
    silver = silver_file(teacher_path, data, args.neighbours, args.random, args.seed, args.calibrate)
    # 3. the students: the asked-for losses are trained (or reused); the other loss's finished run at the
    # same budget is reported beside them
    students: dict[str, dict[str, Any]] = {}
    configs: dict[str, TrainConfig] = {}
    for loss in LOSSES:
        cfg = TrainConfig(
            kind="cross",
            loss=loss,
            base_model=base,
            data=data,
            train=silver,
            output=MODELS / "stsb-en",
            name=f"cross-{loss}-distil-n{args.neighbours}-r{args.random}-e{args.epochs:g}"
            + (f"-t{teacher_name}" if args.teacher is not None else "")
            + ("" if args.calibrate == "linear" else f"-{args.calibrate}"),
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            max_length=128,
            warmup_ratio=0.1,
            evals=args.evals,
            both_orders=True,
        )
        configs[loss] = cfg
        if loss in args.loss:
            students[loss] = train_or_reuse(cfg)
        elif (report := finished(cfg)) is not None:
            students[loss] = report

    # 4. the best student with its teacher, as one scorer
    best_loss = max(students, key=lambda loss: students[loss]["dev_spearman"])
    splits = load_splits(configs[best_loss])
    if splits.test is None:
        raise SystemExit(f"error: {data} has no test split to measure the blend on")
    mix = {"student": best_loss, **blend(configs[best_loss].output / str(configs[best_loss].name), teacher_path,
           splits.dev, splits.test)}  # fmt: skip

    gold_only: dict[str, Any] = {}
    if (RESULTS / "cross_stsb.json").is_file():
        earlier = json.loads((RESULTS / "cross_stsb.json").read_text())
        gold_only = {"budget": earlier["budget"], "cross": earlier["cross"]}
    pairs = next(iter(students.values()))["data"]["train"]["pairs"]  # both orders
    gold = teacher["data"]["train"]["pairs"]
    result: dict[str, Any] = {
        "benchmark": "STS-B English test (1,379 pairs), Spearman x100: a cross-encoder taught by a bi-encoder",
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
            loss: {"run": configs[loss].name, "train_examples": pairs, **summary(r)} for loss, r in students.items()
        },
        "base_model": model_label(base),
        "budget": {
            k: v
            for k, v in json.loads(configs["cosent"].model_dump_json()).items()
            if k not in ("data", "train", "base_model", "output", "progress", "loss", "name")
        },
        "blend_with_teacher": mix,
        "gold_only": gold_only,
        "train_seconds": {"teacher": teacher["seconds"], **{loss: r["seconds"] for loss, r in students.items()}},
    }
    curves = {f"student ({loss}) taught by {teacher_name}": r["dev_curve"] for loss, r in students.items()}
    first = RESULTS / "cross_distil.json"
    if args.result != first.stem and first.is_file():  # another teacher or silver set: the default run beside it
        default_run = json.loads(first.read_text())
        for loss, entry in default_run["students"].items():
            curves[f"{first.name}: student ({loss}) taught by {default_run['teacher']['run']}"] = entry["dev_curve"]
    for loss, entry in gold_only.get("cross", {}).items():
        curves[f"gold only ({loss})"] = entry["dev_curve"]
    plot_curves(
        {"cross-encoder, dev Spearman": curves},
        RESULTS / f"{args.result}.png",
        f"STS-B cross-encoders: gold only against gold + {pairs // 2 - gold:,} teacher-labelled pairs",
        ymin=80,
        levels={f"teacher bi-encoder (dev {teacher['dev_spearman']:.1f})": teacher["dev_spearman"]},
    )
    path = write_result(args.result, result)
    print(json.dumps({"teacher": teacher["test_spearman"], **{k: r["test_spearman"] for k, r in students.items()}}))
    print(json.dumps({k: v for k, v in mix.items() if k != "dev_by_weight"}))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
