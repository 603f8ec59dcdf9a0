"""Uncertainty sampling from the model's softmax ``p = softmax(f(x))`` (Settles, 2009):

- entropy: ``H(p) = -sum_c p_c log p_c``
- least confidence: ``1 - max_c p_c``
- margin: ``-(p_(1) - p_(2))`` (smallest gap between the two most probable classes first)

Each strategy is a score on logits (``*_score`` functions, usable on their own) wrapped in a
:class:`~zerosum.query.ScoringStrategy`. Plus :class:`RandomStrategy`, the baseline.
"""

from __future__ import annotations

import torch
from torch import nn

from zerosum.query.base import QueryStrategy
from zerosum.query.scoring import ScoringStrategy


def entropy_score(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def least_confidence_score(logits: torch.Tensor) -> torch.Tensor:
    return 1.0 - torch.softmax(logits.float(), dim=1).max(dim=1).values


def margin_score(logits: torch.Tensor) -> torch.Tensor:
    top2 = torch.softmax(logits.float(), dim=1).topk(2, dim=1).values
    return -(top2[:, 0] - top2[:, 1])


class EntropyStrategy(ScoringStrategy):
    """Label the samples of highest predictive entropy."""

    def score_batch(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return entropy_score(module(x))


class LeastConfidenceStrategy(ScoringStrategy):
    """Label the samples whose most probable class is least probable."""

    def score_batch(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return least_confidence_score(module(x))


class MarginStrategy(ScoringStrategy):
    """Label the samples with the smallest gap between the top-2 class probabilities."""

    def score_batch(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return margin_score(module(x))


class RandomStrategy(QueryStrategy):
    """Uniformly random samples. The generator is seeded by ``seed`` and the current labeled count,
    so every rank (and a resumed run) draws the same indices without touching the global RNG.

    Args:
        seed: seed of the draws (combined with the labeled count).
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def select(self, trainer, module, pool, budget: int) -> torch.Tensor:
        budget = self.check_budget(pool, budget)
        unlabeled = pool.unlabeled_indices
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + pool.num_labeled)
        return unlabeled[torch.randperm(len(unlabeled), generator=g)[:budget]].sort().values
