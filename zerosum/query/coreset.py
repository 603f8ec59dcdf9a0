"""Core-set selection (Sener & Savarese, 2018): k-center greedy on penultimate features.

Greedy 2-approximation of the k-center problem: with ``d(u) = min_{c in labeled} ||f(u) - f(c)||``,
repeatedly label ``argmax_u d(u)`` and update ``d(u) <- min(d(u), ||f(u) - f(new)||)``.
Memory is O(N d): the initial distances to the labeled set are computed in chunks, each greedy step
is one matrix-vector product against precomputed squared norms (no N x N matrix ever exists).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from zerosum.query.base import QueryStrategy
from zerosum.query.scoring import module_features, score_pool


def _sq_dists(a: torch.Tensor, a_sq: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(len(a), len(b))`` via ``|a|^2 - 2 a.b + |b|^2``, clamped at 0."""
    return (a_sq[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]).clamp_min_(0)


def k_center_greedy(
    unlabeled: torch.Tensor, labeled: Optional[torch.Tensor], k: int, chunk: int = 4096
) -> torch.Tensor:
    """Positions (into ``unlabeled``) of ``k`` greedy k-center picks, in pick order.

    Args:
        unlabeled: ``(N, d)`` features of the candidates.
        labeled: ``(M, d)`` features of the current centres; if empty or ``None`` the first pick is
            candidate 0 by convention.
        k: number of picks (``<= N``).
        chunk: rows of ``labeled`` per block when computing the initial distances.
    """
    n = len(unlabeled)
    if not 0 < k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    u = unlabeled.float()
    u_sq = (u * u).sum(1)
    min_d = torch.full((n,), float("inf"), device=u.device)
    if labeled is not None and len(labeled):
        lab = labeled.float().to(u.device)
        for start in range(0, len(lab), chunk):
            min_d = torch.minimum(min_d, _sq_dists(u, u_sq, lab[start:start + chunk]).min(dim=1).values)
    picks = torch.empty(k, dtype=torch.long)
    for j in range(k):
        i = int(torch.argmax(min_d)) if torch.isfinite(min_d).any() else 0
        picks[j] = i
        c = u[i]
        d_new = (u_sq - 2.0 * (u @ c) + u_sq[i]).clamp_min_(0)
        min_d = torch.minimum(min_d, d_new)
        min_d[i] = -1.0  # never picked twice
    return picks


class CoresetStrategy(QueryStrategy):
    """k-center greedy on ``module.features(x)`` (or ``module.net.features``) of the labeled and
    unlabeled samples (evaluation transforms). Every rank gathers all features and runs the same
    deterministic greedy loop.

    Args:
        device: where the greedy loop runs (default: the module's device).
    """

    def __init__(self, device: Optional[str] = None):
        self.device = device

    def select(self, trainer, module: nn.Module, pool, budget: int) -> torch.Tensor:
        budget = self.check_budget(pool, budget)
        features = module_features(module)  # clear error before any work
        fn = lambda m, x: features(x)  # noqa: E731
        unl, unl_idx = score_pool(trainer, module, pool.unlabeled_dataloader(), fn)
        lab, _ = score_pool(trainer, module, pool.labeled_dataloader(train=False), fn)
        device = torch.device(self.device) if self.device else next(module.parameters()).device
        picks = k_center_greedy(unl.reshape(len(unl), -1).to(device), lab.reshape(len(lab), -1).to(device), budget)
        return unl_idx[picks.cpu()]
