"""Train a bi-encoder on sentence pairs (``SentenceTransformerTrainer``), keeping the best dev checkpoint.

    python -m training.train_bi --data ../shared/data/stsb-en --loss cosent --epochs 4

Losses: ``cosent`` (``CoSENTLoss``, λ = 20: only the order of the labels matters), ``cosine``
(``CosineSimilarityLoss``: regression of the cosine onto the label rescaled to [0, 1]), ``softmax``
(``SoftmaxLoss``: Sentence-BERT's classifier over (u, v, |u − v|), labels are integer classes).
The output folder holds the model, its model card and ``report.json`` (data, sizes, hyper-parameters,
seed, time, dev curve, dev and test Spearman ×100).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
from sentence_transformers.sentence_transformer.losses import CoSENTLoss, CosineSimilarityLoss, SoftmaxLoss
from transformers import set_seed

from simsearch.cli import fail, settings_with
from simsearch.data.pairs import PairDataError, PairSet
from simsearch.models.bi_encoder import load_sentence_transformer
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

LOSSES = ("cosent", "cosine", "softmax")
COSENT_SCALE = 20.0  # λ of CoSENT for bi-encoders when none is given (the paper's, and CoSENTLoss's default)


def make_loss(cfg: TrainConfig, model: SentenceTransformer, train: PairSet) -> tuple[torch.nn.Module, list]:
    """The loss and the label column it trains on."""
    if cfg.loss == "cosent":
        return CoSENTLoss(model, scale=cfg.scale or COSENT_SCALE), train.scores
    if cfg.loss == "cosine":
        return CosineSimilarityLoss(model), train.normalised_scores()
    if cfg.loss == "softmax":
        classes = [int(s) for s in train.scores]
        if any(c != s or c < 0 for c, s in zip(classes, train.scores, strict=True)):
            raise PairDataError("the softmax loss needs non-negative integer class labels (0/1, or 0-5)")
        dim = model.get_embedding_dimension()
        assert dim is not None
        return SoftmaxLoss(model, embedding_dimension=dim, num_labels=max(classes) + 1), classes
    raise ValueError(f"unknown loss {cfg.loss!r}; choose from {LOSSES}")


def spearman(model: SentenceTransformer, pairs: PairSet, name: str) -> float:
    evaluator = EmbeddingSimilarityEvaluator(
        pairs.a, pairs.b, pairs.scores, name=name, batch_size=64, main_similarity="cosine", write_csv=False
    )
    return float(evaluator(model)[primary_metric(evaluator)])


def run(cfg: TrainConfig) -> TrainResult:
    started = time.perf_counter()
    set_seed(cfg.seed)
    # 1. data: train, dev and test splits (a fixed subsample when a limit is set)
    splits = load_splits(cfg)
    # 2. the model to fine-tune
    model = load_sentence_transformer(cfg.base_model)
    model.max_seq_length = cfg.max_length
    if cfg.freeze_embeddings:
        freeze_token_embeddings(model[0].auto_model)
    # 3. the loss and the labels it wants
    loss, labels = make_loss(cfg, model, splits.train)
    train_dataset = Dataset.from_dict({"sentence1": splits.train.a, "sentence2": splits.train.b, "label": labels})
    # 4. the dev evaluator: Spearman of cosine against the gold scores, also before any training
    dev_evaluator = EmbeddingSimilarityEvaluator(
        splits.dev.a,
        splits.dev.b,
        splits.dev.scores,
        name="dev",
        batch_size=64,
        main_similarity="cosine",
        write_csv=False,
    )
    dev_before = float(dev_evaluator(model)[primary_metric(dev_evaluator)])
    test_before = spearman(model, splits.test, "test") if splits.test else None
    # 5. training arguments: evaluate `evals` times, keep the best dev checkpoint
    out = cfg.output / cfg.run_name()
    metric = primary_metric(dev_evaluator)
    args = SentenceTransformerTrainingArguments(**trainer_arguments(cfg, out, len(splits.train), metric))
    # 6. train
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=dev_evaluator
    )
    trainer.train()
    # 7-8. evaluate the kept checkpoint, save it with its card and the report
    return finish_run(cfg, splits, out, model, trainer, loss, metric, spearman, dev_before, test_before, started)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-train-bi", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--loss", choices=LOSSES, default="cosent")
    add_common_arguments(p, default_scale=COSENT_SCALE)
    args = vars(p.parse_args(argv))
    args["base_model"] = args["base_model"] or settings_with().bi_model
    try:
        out = run(TrainConfig(kind="bi", **args))
    except (PairDataError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    print(f"saved {out.path} (report: {out.path / 'report.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
