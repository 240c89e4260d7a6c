"""CoSENT for cross-encoders, which sentence-transformers lacks (it ships CoSENT for bi-encoders only)."""

from __future__ import annotations

from typing import Any

import torch
from sentence_transformers import CrossEncoder
from sentence_transformers.util import batch_to_device
from torch import Tensor, nn


def cosent_ranking_loss(scores: Tensor, labels: Tensor, scale: float) -> Tensor:
    """``log(1 + Σ_{y_i > y_j} exp(scale · (s_j − s_i)))`` over every ordered pair of the batch.

    Pairs with equal labels contribute nothing; with no ordered pair at all the loss is ``log 1 = 0``.
    """
    scores = scores.view(-1) * scale
    labels = labels.view(-1)
    diff = scores[None, :] - scores[:, None]  # diff[i, j] = s_j - s_i
    ordered = labels[:, None] > labels[None, :]  # y_i > y_j: s_i should win
    # Masked entries get -inf-like values so they vanish in the log-sum-exp; the leading 0 is the "1 +".
    diff = diff - (~ordered).to(diff.dtype) * 1e12
    return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.view(-1)]), dim=0)


class CoSENTCrossEncoderLoss(nn.Module):
    def __init__(self, model: CrossEncoder, scale: float = 1.0) -> None:
        """
        CoSENT as a loss for interaction-based (cross-encoder) similarity: the ranking loss of CoSENT
        applied to the cross-encoder's raw logits instead of the cosine of two embeddings. For every two
        pairs of a batch whose labels say the first is more similar, it adds ``exp(λ (s_j − s_i))``:

            loss = log(1 + Σ_{y_i > y_j} exp(λ (s_j − s_i)))

        Only the order of the labels matters, so any scale of label works (0/1 matches, 0-5 STS
        scores, graded relevance) and no rescaling to [0, 1] is needed, unlike BCE.

        Args:
            model: a ``CrossEncoder`` with one output (``num_labels=1``).
            scale: λ. The logits are unbounded, so λ only sets how sharply score gaps are punished
                relative to the learning rate; Su (CoSENT part 3) uses the logit directly, λ = 1.

        References:
            - Su, "CoSENT (3): as a loss for interactive similarity", 2022,
              https://kexue.fm/archives/9341
            - Su, "CoSENT (1): a more effective sentence vector scheme than Sentence-BERT", 2022,
              https://kexue.fm/archives/8847

        Requirements:
            1. Sentence pairs with a numeric label; a higher label means more similar.
            2. Batches that hold pairs with different labels (shuffled data).

        Inputs:
            +----------------------------------+------------------+
            | Texts                            | Labels           |
            +==================================+==================+
            | (sentence_A, sentence_B) pairs   | float similarity |
            +----------------------------------+------------------+

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers import CrossEncoder, CrossEncoderTrainer
                from training.losses import CoSENTCrossEncoderLoss

                model = CrossEncoder("path/to/model", num_labels=1)
                train = Dataset.from_dict({"s1": ["a", "b"], "s2": ["c", "d"], "score": [0.2, 4.8]})
                loss = CoSENTCrossEncoderLoss(model)
                CrossEncoderTrainer(model=model, train_dataset=train, loss=loss).train()
        """
        super().__init__()
        self.model = model  # the trainer swaps in its wrapped model through this attribute's name
        self.scale = scale
        if not isinstance(model, CrossEncoder):
            raise ValueError(f"{type(self).__name__} expects a CrossEncoder, got {type(model).__name__}")
        if model.num_labels != 1:
            raise ValueError(f"{type(self).__name__} expects a CrossEncoder with 1 output, got {model.num_labels}")

    def forward(
        self, inputs: list[list[str]], labels: Tensor, prompt: str | None = None, task: str | None = None
    ) -> Tensor:
        if len(inputs) != 2:
            raise ValueError(f"{type(self).__name__} expects two text columns, got {len(inputs)}")
        features = self.model.preprocess(list(zip(inputs[0], inputs[1], strict=True)), prompt=prompt, task=task)
        logits = self.model(batch_to_device(features, self.model.device))["scores"].view(-1)
        if labels.numel() != logits.numel():
            raise ValueError(
                f"{type(self).__name__} expects one label per pair: {logits.numel()} pairs, {labels.numel()} labels"
            )
        return cosent_ranking_loss(logits, labels.to(logits.device, dtype=logits.dtype), self.scale)

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale}

    @property
    def citation(self) -> str:
        return """
@online{kexuefm-9341,
    title={CoSENT (3): as a loss for interactive similarity},
    author={Su Jianlin},
    year={2022},
    month={Nov},
    url={https://kexue.fm/archives/9341},
}
"""
