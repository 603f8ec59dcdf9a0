"""The one interface of every acquisition strategy.

A strategy receives the trainer (for the distributed context), the LightningModule being trained,
the pool datamodule and a budget, and returns the pool indices to label next. Strategies that score
samples independently subclass :class:`ScoringStrategy` and implement ``score_batch`` only;
strategies with their own networks or sequential decisions (core-set, VAAL, SRAL) implement
``select``. Every rank must return the same indices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import lightning as L
import torch


class QueryStrategy(ABC):
    """Chooses which unlabeled pool samples to label next."""

    @abstractmethod
    def select(self, trainer: L.Trainer, module: L.LightningModule, pool, budget: int) -> torch.Tensor:
        """Return ``budget`` distinct unlabeled pool indices (a long tensor), identical on every rank."""
