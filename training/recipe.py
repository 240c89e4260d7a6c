"""What the two training jobs (``train_bi``, ``train_cross``) share: typed configuration, data splits,
trainer arguments, the dev-Spearman curve, and the report written next to the model."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simsearch.atomic import atomic_write_json
from simsearch.data.pairs import PairSet, read_pairs


class TrainConfig(BaseModel):
    """Everything a training run depends on; written into its report."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["bi", "cross"]
    loss: str
    base_model: str
    data: Path | None = Field(None, description="A data set folder (STS-B release or train/valid/test.tsv).")
    train: Path | None = None
    dev: Path | None = None
    test: Path | None = None
    output: Path = Path("models")
    name: str | None = None
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    seed: int = 42
    max_length: int = Field(128, ge=8)
    scale: float | None = Field(None, gt=0, description="λ of CoSENT (default: 20 bi-encoder, 1 cross-encoder).")
    train_limit: int | None = Field(None, ge=2, description="Train on a fixed random subsample of this size.")
    dev_limit: int | None = Field(None, ge=2)
    test_limit: int | None = Field(None, ge=2)
    evals: int = Field(10, ge=1, description="Dev evaluations during training (for the curve and the best model).")
    text_prefix: str = Field("", description='Put before every text (E5 models want "query: ").')
    both_orders: bool = Field(
        False,
        description="Train on every pair in both orders, (a, b) and (b, a): a cross-encoder reads them "
        "as one sequence, so the swapped pair is a new example of the same symmetric label.",
    )
    freeze_embeddings: bool = Field(
        False,
        description="Keep the token embeddings as they are. In a multilingual model with a 250k-token "
        "vocabulary they are most of the weights, and updating them (gradient, AdamW state) costs a CPU more "
        "than the rest of a step; the tokens a small training set meets are few anyway.",
    )
    progress: bool = True

    @model_validator(mode="after")
    def _has_data(self) -> TrainConfig:
        if self.data is None and self.train is None:
            raise ValueError("give --data (a data set folder) or --train (a pair file)")
        return self

    def run_name(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return self.name or f"{self.kind}-{self.loss}-{stamp}"


def freeze_token_embeddings(transformer: Any) -> int:
    """Stop training a Hugging Face model's input (token) embeddings; the trainers' optimizers take only
    parameters that require gradients. Returns how many weights were frozen."""
    weight = transformer.get_input_embeddings().weight
    weight.requires_grad_(False)
    return int(weight.numel())


@dataclass
class TrainResult:
    path: Path  # the run folder: model, model card, report.json
    model: Any  # the trained model, still in memory


@dataclass
class Splits:
    train: PairSet
    dev: PairSet
    test: PairSet | None


def load_splits(cfg: TrainConfig) -> Splits:
    def load(explicit: Path | None, split: str, limit: int | None, required: bool) -> PairSet | None:
        source = explicit or cfg.data
        if source is None:
            if required:
                raise ValueError(f"no {split} data: give --{split} or --data")
            return None
        pairs = read_pairs(source, None if explicit else split).subsample(limit, seed=cfg.seed)
        if cfg.text_prefix:
            pairs.a = [cfg.text_prefix + t for t in pairs.a]
            pairs.b = [cfg.text_prefix + t for t in pairs.b]
        return pairs

    train = load(cfg.train, "train", cfg.train_limit, True)
    if cfg.both_orders and train is not None:
        train = PairSet(
            train.a + train.b, train.b + train.a, train.scores * 2, train.source, {**train.meta, "both_orders": True}
        )
    dev = load(cfg.dev, "dev", cfg.dev_limit, True)
    test = load(cfg.test, "test", cfg.test_limit, False) if (cfg.test or cfg.data) else None
    assert train is not None and dev is not None
    return Splits(train=train, dev=dev, test=test)


def trainer_arguments(cfg: TrainConfig, out: Path, n_train: int, metric: str) -> dict[str, Any]:
    """Keyword arguments shared by both trainers' ``TrainingArguments``."""
    total = math.ceil(math.ceil(n_train / cfg.batch_size) * cfg.epochs)
    every = max(1, total // cfg.evals)
    return {
        "output_dir": str(out / "checkpoints"),
        "num_train_epochs": cfg.epochs,
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": 64,
        "learning_rate": cfg.lr,
        "warmup_steps": cfg.warmup_ratio,  # a float is a ratio on transformers 5
        "weight_decay": cfg.weight_decay,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "eval_strategy": "steps",
        "eval_steps": every,
        "save_strategy": "steps",
        "save_steps": every,
        "save_total_limit": 1,
        "save_only_model": True,  # no optimizer state: checkpoints exist only to restore the best model
        "load_best_model_at_end": True,
        "metric_for_best_model": metric,
        "greater_is_better": True,
        "logging_steps": max(1, every // 2),
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": not cfg.progress,
        "dataloader_drop_last": False,
    }


def primary_metric(evaluator: Any) -> str:
    """The evaluator's main metric name (its keys are prefixed with ``eval_`` in the trainer's log)."""
    metric = evaluator.primary_metric
    if not metric:
        raise ValueError(f"{type(evaluator).__name__} has no primary metric")
    return str(metric)


def loss_config(loss: Any) -> dict[str, Any]:
    return {"name": type(loss).__name__, **loss.get_config_dict()}


def dev_curve(log_history: list[dict[str, Any]], metric: str, start: float) -> list[dict[str, float]]:
    """``[{step, spearman}]`` from the trainer's log, with the score before training at step 0."""
    key = f"eval_{metric}"
    points = [{"step": 0, "spearman": round(100 * start, 3)}]
    points += [{"step": int(e["step"]), "spearman": round(100 * e[key], 3)} for e in log_history if key in e]
    return points


def train_losses(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [{"step": int(e["step"]), "loss": float(e["loss"])} for e in log_history if "loss" in e]


def describe(pairs: PairSet) -> dict[str, Any]:
    return {"source": pairs.source, "pairs": len(pairs), **pairs.meta}


def write_report(out: Path, cfg: TrainConfig, splits: Splits, payload: dict[str, Any], started: float) -> Path:
    report = {
        "config": json.loads(cfg.model_dump_json()),
        "data": {
            k: describe(v)
            for k, v in (("train", splits.train), ("dev", splits.dev), ("test", splits.test))
            if v is not None
        },
        **payload,
        "seconds": round(time.perf_counter() - started, 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write_json(out / "report.json", report)
    return out / "report.json"


def finish_run(
    cfg: TrainConfig,
    splits: Splits,
    out: Path,
    model: Any,
    trainer: Any,
    loss: Any,
    metric: str,
    spearman: Callable[[Any, PairSet, str], float],
    dev_before: float,
    test_before: float | None,
    started: float,
) -> TrainResult:
    """Steps shared by both jobs once the trainer has restored the best checkpoint: evaluate it on dev
    and test, save it (sentence-transformers writes the model card), drop the checkpoints, write the report."""
    # 7. the kept model on dev and test
    model.eval()
    dev_after = spearman(model, splits.dev, "dev")
    test_after = spearman(model, splits.test, "test") if splits.test else None
    # 8. the model, its card, the report
    model.save(str(out))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    best = trainer.state.best_model_checkpoint
    write_report(
        out,
        cfg,
        splits,
        {
            "loss_config": loss_config(loss),
            "steps": trainer.state.global_step,
            "best_step": int(best.rsplit("-", 1)[-1]) if best else None,
            "dev_spearman_before": _pct(dev_before),
            "test_spearman_before": _pct(test_before),
            "dev_spearman": _pct(dev_after),
            "test_spearman": _pct(test_after),
            "dev_curve": dev_curve(trainer.state.log_history, metric, dev_before),
            "train_loss": train_losses(trainer.state.log_history),
        },
        started,
    )
    return TrainResult(out, model)


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 3)


def add_common_arguments(p: argparse.ArgumentParser, *, default_scale: float) -> None:
    p.add_argument("--data", type=Path, help="data set folder: the STS-B release or train/valid/test.tsv")
    p.add_argument("--train", type=Path, help="training pairs (CSV/TSV/JSONL); overrides --data's train split")
    p.add_argument("--dev", type=Path, help="dev pairs; overrides --data's dev split")
    p.add_argument("--test", type=Path, help="test pairs; overrides --data's test split")
    p.add_argument("--model", dest="base_model", help="base model folder (default: SIMSEARCH_BI_MODEL)")
    p.add_argument("--output", type=Path, default=Path("models"), help="parent folder of the run (default: models)")
    p.add_argument("--name", help="run folder name (default: <kind>-<loss>-<timestamp>)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-length", type=int, default=128, help="tokens per text (bi) or per pair (cross)")
    p.add_argument("--scale", type=float, help=f"CoSENT λ (default: {default_scale:g})")
    p.add_argument("--train-limit", type=int, help="train on a fixed random subsample of this many pairs")
    p.add_argument("--dev-limit", type=int)
    p.add_argument("--test-limit", type=int)
    p.add_argument("--evals", type=int, default=10, help="dev evaluations during training")
    p.add_argument("--text-prefix", default="", help='put before every text (E5: "query: ")')
    p.add_argument("--both-orders", action="store_true", help="train on (a, b) and (b, a) (cross-encoders)")
    p.add_argument(
        "--freeze-embeddings", action="store_true", help="keep the token embeddings fixed (large vocabularies)"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false")
