"""Deep Bayesian active learning with MC dropout (Gal, Islam & Ghahramani, 2017).

``T`` stochastic forward passes with only the dropout layers in train mode (batch norm keeps its
running statistics) give ``p_t = softmax(f_t(x))`` and ``p_bar = mean_t p_t``:

- max entropy: ``H[p_bar]``
- BALD (mutual information between prediction and weights):
  ``I = H[p_bar] - mean_t H[p_t]``
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from zerosum.query.scoring import ScoringStrategy


def dropout_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


@contextmanager
def mc_dropout(module: nn.Module):
    """Dropout layers in train mode (everything else unchanged) inside; restored on exit."""
    layers = dropout_layers(module)
    if not layers:
        raise ValueError(
            f"MC-dropout strategies need dropout layers with p > 0, and {type(module).__name__} has none; "
            "e.g. give the classifier `net_args: {dropout: 0.3}`"
        )
    flags = [m.training for m in layers]
    for m in layers:
        m.train()
    try:
        yield
    finally:
        for m, flag in zip(layers, flags):
            m.training = flag


def mc_probabilities(module: nn.Module, x: torch.Tensor, samples: int) -> torch.Tensor:
    """``(T, B, C)`` softmax outputs of ``samples`` dropout passes."""
    with mc_dropout(module):
        return torch.stack([torch.softmax(module(x).float(), dim=1) for _ in range(samples)])


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


def bald_score(probs: torch.Tensor) -> torch.Tensor:
    """Mutual information from ``(T, B, C)`` MC probabilities."""
    return _entropy(probs.mean(0)) - _entropy(probs).mean(0)


def max_entropy_score(probs: torch.Tensor) -> torch.Tensor:
    return _entropy(probs.mean(0))


class BALDStrategy(ScoringStrategy):
    """Label the samples of highest BALD mutual information over ``samples`` dropout passes."""

    def __init__(self, samples: int = 10):
        if samples < 2:
            raise ValueError(f"samples must be >= 2 for MC dropout, got {samples}")
        self.samples = samples

    def score_batch(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return bald_score(mc_probabilities(module, x, self.samples))


class MaxEntropyStrategy(BALDStrategy):
    """Label the samples of highest entropy of the MC-averaged prediction."""

    def score_batch(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return max_entropy_score(mc_probabilities(module, x, self.samples))
