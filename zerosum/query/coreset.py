"""Core-set selection (Sener & Savarese, 2018): k-center greedy on penultimate features.

Greedy 2-approximation of the k-center problem: with ``d(u) = min_{c in labeled} ||f(u) - f(c)||``,
repeatedly label ``argmax_u d(u)`` and update ``d(u) <- min(d(u), ||f(u) - f(new)||)``.
Memory is O(N d): the initial distances to the labeled set are computed in blocks, and each greedy
step is one fused matrix-vector product against precomputed squared norms (no N x N matrix ever
exists), at the speed of one read of the feature matrix.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from zerosum.query.base import QueryStrategy
from zerosum.query.scoring import module_features, score_pool


LOW_PRECISION = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def _mv_float32(u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``u @ c`` as float32 for low-precision ``u`` (on CUDA accumulated in float32 by the matmul)."""
    if u.is_cuda:
        return torch.mm(u, c[:, None], out_dtype=torch.float32)[:, 0]
    return torch.mv(u, c).float()


def initial_min_distances(u: torch.Tensor, u_sq: torch.Tensor, centres: Optional[torch.Tensor],
                          chunk: int = 256) -> torch.Tensor:
    """Squared distance of every row of ``u`` to its nearest row of ``centres`` (``inf`` without
    centres): ``|u|^2 - 2 u.c + |c|^2`` in blocks of ``chunk`` centres (memory ``N x chunk``)."""
    min_d = torch.full((len(u),), float("inf"), device=u.device)
    if centres is None or not len(centres):
        return min_d
    lab = centres.to(device=u.device, dtype=u.dtype)
    for start in range(0, len(lab), chunk):
        block = lab[start:start + chunk]
        prod = u @ block.T
        d = u_sq[:, None] - 2.0 * prod.float() + (block.float() * block.float()).sum(1)[None, :]
        torch.minimum(min_d, d.clamp_min_(0).min(dim=1).values, out=min_d)
    return min_d


def k_center_greedy(
    unlabeled: torch.Tensor, labeled: Optional[torch.Tensor], k: int, chunk: int = 256,
    precision: str = "float32",
) -> torch.Tensor:
    """Positions (into ``unlabeled``) of ``k`` greedy k-center picks, in pick order.

    One greedy step reads the feature matrix once (one fused ``addmv``) and does O(N) work in place,
    so its time is that of a memory read of the features (``benchmarks/query_throughput.py``
    measures the ratio).

    Args:
        unlabeled: ``(N, d)`` features of the candidates.
        labeled: ``(M, d)`` features of the current centres; if empty or ``None`` the first pick is
            candidate 0 by convention.
        k: number of picks (``<= N``).
        chunk: centres per block when computing the initial distances.
        precision: ``"float32"`` (exact), or ``"bfloat16"`` / ``"float16"``: features stored at half the
            bytes, distances combined in float32 (picks may differ from float32 where distances tie
            within the reduced precision).
    """
    n = len(unlabeled)
    if not 0 < k <= n:
        raise ValueError(f"k: got {k}; allowed: 1 to the {n} candidates")
    if precision != "float32" and precision not in LOW_PRECISION:
        raise ValueError(f"precision: got {precision!r}; allowed: 'float32', {', '.join(map(repr, LOW_PRECISION))}")
    u = unlabeled.float() if precision == "float32" else unlabeled.to(LOW_PRECISION[precision])
    u_sq = (u.float() ** 2).sum(1) if precision != "float32" else (u * u).sum(1)
    min_d = initial_min_distances(u, u_sq, labeled, chunk)
    picks = torch.empty(k, dtype=torch.long)
    d_new = torch.empty_like(min_d)
    i = int(torch.argmax(min_d)) if torch.isfinite(min_d).any() else 0
    for j in range(k):
        picks[j] = i
        if precision == "float32":
            torch.addmv(u_sq, u, u[i], alpha=-2.0, out=d_new)  # |u|^2 - 2 u.c: one read of the features
        else:
            torch.sub(u_sq, _mv_float32(u, u[i]), alpha=2.0, out=d_new)
        d_new.add_(u_sq[i]).clamp_min_(0)
        torch.minimum(min_d, d_new, out=min_d)
        min_d[i] = -1.0  # never picked twice
        if j + 1 < k:
            i = int(torch.argmax(min_d))
    return picks


class CoresetStrategy(QueryStrategy):
    """k-center greedy on ``module.features(x)`` (or ``module.net.features``) of the labeled and
    unlabeled samples (evaluation transforms). Every rank gathers all features and runs the same
    deterministic greedy loop.

    Args:
        device: where the greedy loop runs (default: the module's device).
        precision: ``"float32"`` (exact), ``"bfloat16"`` or ``"float16"`` (features at half the bytes).
    """

    def __init__(self, device: Optional[str] = None, precision: str = "float32"):
        if precision not in ("float32", *LOW_PRECISION):
            raise ValueError(f"precision: got {precision!r}; allowed: 'float32', 'bfloat16', 'float16'")
        self.device, self.precision = device, precision

    def select(self, trainer, module: nn.Module, pool, budget: int) -> torch.Tensor:
        budget = self.check_budget(pool, budget)
        features = module_features(module)  # clear error before any work
        fn = lambda m, x: features(x)  # noqa: E731
        unl, unl_idx = score_pool(trainer, module, pool.unlabeled_dataloader(), fn)
        lab, _ = score_pool(trainer, module, pool.labeled_dataloader(train=False), fn)
        device = torch.device(self.device) if self.device else next(module.parameters()).device
        picks = k_center_greedy(unl.reshape(len(unl), -1).to(device), lab.reshape(len(lab), -1).to(device), budget,
                                precision=self.precision)
        return unl_idx[picks.cpu()]
