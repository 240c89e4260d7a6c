"""Train a cross-encoder on sentence pairs (``CrossEncoderTrainer``), keeping the best dev checkpoint.

    python -m training.train_cross --data ../shared/data/stsb-en --loss cosent --epochs 4

The default base is the bi-encoder's transformer with a fresh one-logit head. Losses: ``cosent``
(:class:`training.losses.CoSENTCrossEncoderLoss` on the raw logits; only the order of the labels
matters) and ``bce`` (``BinaryCrossEntropyLoss`` on the label rescaled to [0, 1]).
The output folder holds the model, its model card and ``report.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from datasets import Dataset
from sentence_transformers import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
from sentence_transformers.cross_encoder.evaluation import CrossEncoderCorrelationEvaluator
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from transformers import set_seed

from simsearch.cli import fail, settings_with
from simsearch.data.pairs import PairDataError, PairSet
from training.losses import CoSENTCrossEncoderLoss
from training.recipe import (
    TrainConfig,
    TrainResult,
    add_common_arguments,
    finish_run,
    freeze_token_embeddings,
    load_splits,
    primary_metric,
    trainer_arguments,
)

LOSSES = ("cosent", "bce")


def make_loss(cfg: TrainConfig, model: CrossEncoder, train: PairSet) -> tuple[torch.nn.Module, list[float]]:
    if cfg.loss == "cosent":
        return CoSENTCrossEncoderLoss(model, scale=cfg.scale or 1.0), train.scores
    if cfg.loss == "bce":
        return BinaryCrossEntropyLoss(model), train.normalised_scores()
    raise ValueError(f"unknown loss {cfg.loss!r}; choose from {LOSSES}")


def evaluator(pairs: PairSet, name: str) -> CrossEncoderCorrelationEvaluator:
    return CrossEncoderCorrelationEvaluator(
        [[a, b] for a, b in zip(pairs.a, pairs.b, strict=True)], pairs.scores, name=name, batch_size=64, write_csv=False
    )


def spearman(model: CrossEncoder, pairs: PairSet, name: str) -> float:
    ev = evaluator(pairs, name)
    return float(ev(model)[primary_metric(ev)])


def build_model(cfg: TrainConfig) -> CrossEncoder:
    """A one-logit cross-encoder; from a bi-encoder folder, sentence-transformers keeps the transformer
    and adds a freshly initialised head (seeded, so runs repeat)."""
    set_seed(cfg.seed)
    model = CrossEncoder(cfg.base_model, num_labels=1, max_length=cfg.max_length, device="cpu")
    if cfg.freeze_embeddings:
        freeze_token_embeddings(model.model)
    return model


def run(cfg: TrainConfig) -> TrainResult:
    started = time.perf_counter()
    # 1. data
    splits = load_splits(cfg)
    # 2. the model: the base transformer with a one-logit head
    model = build_model(cfg)
    # 3. the loss and its labels
    loss, labels = make_loss(cfg, model, splits.train)
    train_dataset = Dataset.from_dict({"sentence1": splits.train.a, "sentence2": splits.train.b, "label": labels})
    # 4. dev evaluator (Spearman of the scores against gold), also before training
    dev_evaluator = evaluator(splits.dev, "dev")
    dev_before = float(dev_evaluator(model)[primary_metric(dev_evaluator)])
    # 5. arguments
    out = cfg.output / cfg.run_name()
    metric = primary_metric(dev_evaluator)
    args = CrossEncoderTrainingArguments(**trainer_arguments(cfg, out, len(splits.train), metric))
    # 6. train
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=dev_evaluator
    )
    trainer.train()
    # 7-8. evaluate the kept checkpoint, save it with its card and the report
    return finish_run(cfg, splits, out, model, trainer, loss, metric, spearman, dev_before, None, started)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-train-cross", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--loss", choices=LOSSES, default="cosent")
    add_common_arguments(p, default_scale=1.0)
    args = vars(p.parse_args(argv))
    args["base_model"] = args["base_model"] or settings_with().bi_model
    try:
        out = run(TrainConfig(kind="cross", **args))
    except (PairDataError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    print(f"saved {out.path} (report: {out.path / 'report.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
