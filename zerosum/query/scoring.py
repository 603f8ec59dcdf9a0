"""Scoring a pool, sharded over ranks (:func:`zerosum.inference.map_pool`): the shared base of every
strategy that scores samples independently."""

from __future__ import annotations

from typing import Callable, Optional

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from zerosum.inference import map_pool
from zerosum.query.base import QueryStrategy, top_k


def score_pool(
    trainer: Optional[L.Trainer], module: nn.Module, loader: DataLoader, score_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``score_fn(module, x)`` for every sample of ``loader``: ``(scores, pool_indices)``, sharded
    over ranks and gathered (see :func:`map_pool`); the same global order on every rank."""
    scores, _, pool_indices = map_pool(trainer, module, loader, lambda m, batch: score_fn(m, batch[0]))
    return scores, pool_indices


def module_features(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The module's penultimate-feature function: ``module.features`` or ``module.net.features``."""
    for owner in (module, getattr(module, "net", None)):
        fn = getattr(owner, "features", None)
        if callable(fn):
            return fn
    raise AttributeError(
        f"{type(module).__name__} exposes no penultimate features: define `features(x) -> (B, d)` on the "
        "LightningModule, or give it a `net` with `features` (every zerosum.nets classifier has one)"
    )


class ScoringStrategy(QueryStrategy):
    """Label the ``budget`` highest-scoring unlabeled samples. Subclasses implement
    :meth:`score_batch` (``(B,)``, higher = label first; it runs in eval mode without gradients) or
    :meth:`score` (the whole pool at once). :meth:`round_metrics` reports the mean score of the pool
    (``score_mean``: the callback's ``stop_below_score`` reads it) and of the picks (``score_picked_mean``)."""

    _last_metrics: dict[str, float] = {}

    def score_batch(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, trainer: Optional[L.Trainer], module: nn.Module, pool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores, pool_indices)`` of the whole unlabeled pool."""
        return score_pool(trainer, module, pool.unlabeled_dataloader(), self.score_batch)

    def pick(self, scores: torch.Tensor, indices: torch.Tensor, budget: int, pool) -> torch.Tensor:
        """The selection rule on the pool's scores: top-k here (stochastic acquisition samples instead)."""
        return top_k(scores, indices, budget)

    def select(self, trainer, module, pool, budget: int) -> torch.Tensor:
        budget = self.check_budget(pool, budget)
        scores, indices = self.score(trainer, module, pool)
        picked = self.pick(scores, indices, budget, pool)
        self.record_scores(scores, indices, picked)
        return picked

    def record_scores(self, scores: torch.Tensor, indices: torch.Tensor, picked: torch.Tensor) -> None:
        chosen = torch.isin(indices.cpu(), picked.cpu())
        self._last_metrics = {"score_mean": float(scores.float().mean()),
                              "score_picked_mean": float(scores.float().cpu()[chosen].mean())}

    def round_metrics(self) -> dict[str, float]:
        return dict(self._last_metrics)
