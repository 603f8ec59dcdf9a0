"""The one interface of every acquisition strategy.

A strategy receives the trainer (for the distributed context), the LightningModule being trained,
the pool datamodule and a budget, and returns the pool indices to label next. Strategies that score
samples independently subclass :class:`ScoringStrategy` and implement ``score_batch`` only;
strategies with their own networks or sequential decisions (core-set, VAAL, SRAL) implement
``select``. Every rank must return the same indices.

The budget is checked twice, each thing once: the :class:`~zerosum.callbacks.ActiveLearning` callback
validates the user's setting (a count or a fraction) when it is built, and :meth:`QueryStrategy.check_budget`
checks the number a ``select`` receives against the unlabeled pool at query time.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any

import lightning as L
import torch


class QueryStrategy(ABC):
    """Chooses which unlabeled pool samples to label next.

    Optional hooks: :meth:`state_dict` / :meth:`load_state_dict` (saved in the
    :class:`~zerosum.callbacks.ActiveLearning` callback's checkpoint state) for strategies that keep
    state between rounds; :meth:`round_metrics` for numbers a strategy reports about its last query;
    :meth:`settings` (derived from the constructor's arguments) recorded with the results and compared
    on resume.
    """

    @abstractmethod
    def select(self, trainer: L.Trainer, module: L.LightningModule, pool, budget: int) -> torch.Tensor:
        """Return ``budget`` distinct unlabeled pool indices (a long tensor), identical on every rank.
        Implementations start with ``budget = self.check_budget(pool, budget)``."""

    def round_metrics(self) -> dict[str, float]:
        """Numbers about the last :meth:`select` (e.g. a discriminator's AUROC, a mean score). The
        callback calls it right after ``select``, logs each as ``active/<key>`` against the number of
        labels and adds it to ``rounds.csv``. Every rank must return the same values."""
        return {}

    def settings(self) -> dict[str, Any]:
        """The class and the constructor's options (read back from attributes of the same name):
        recorded in ``labeled.json`` and compared when a run resumes. Override if an option is not
        stored under its own name."""
        cls = type(self)
        module = "zerosum.query" if cls.__module__.startswith("zerosum.query.") else cls.__module__
        out: dict[str, Any] = {"class": f"{module}.{cls.__qualname__}"}
        for name, p in inspect.signature(cls.__init__).parameters.items():
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and hasattr(self, name):
                out[name] = plain_setting(getattr(self, name))
        return out

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass

    @staticmethod
    def check_budget(pool, budget) -> int:
        """``budget`` as an int, or a clear error if it is not a positive whole number or exceeds the
        unlabeled pool. The one query-time check: every ``select`` calls it first, so a strategy is
        safe to call on its own (tests, benchmarks) and its callers need not check again."""
        if isinstance(budget, bool) or not isinstance(budget, (int, torch.Tensor)) or int(budget) != budget:
            raise TypeError(f"budget must be an int number of samples, got {budget!r}")
        budget = int(budget)
        if budget <= 0:
            raise ValueError(f"budget must be positive, got {budget}")
        remaining = pool.num_unlabeled
        if budget > remaining:
            raise ValueError(f"budget={budget} is larger than the remaining unlabeled pool ({remaining} samples)")
        return budget


def top_k(scores: torch.Tensor, indices: torch.Tensor, k: int) -> torch.Tensor:
    """The ``indices`` of the ``k`` highest ``scores``; ties go to the smaller position (stable)."""
    order = torch.sort(scores.float().cpu(), descending=True, stable=True).indices[:k]
    return indices.cpu()[order]


def plain_setting(value: Any) -> Any:
    """A setting as JSON-friendly data: numbers, strings, lists, nested strategies' settings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, QueryStrategy):
        return value.settings()
    if isinstance(value, (list, tuple)):
        return [plain_setting(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_setting(v) for k, v in value.items()}
    if isinstance(value, torch.device):
        return str(value)
    return type(value).__name__
