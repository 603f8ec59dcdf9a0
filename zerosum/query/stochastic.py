"""Stochastic batch acquisition (Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron & Gal,
TMLR 2023): instead of the top-k scores, *sample* the batch with probabilities that grow with the
score, which breaks up the redundant clusters top-k picks, at the cost of scoring once.

For scores ``s_i`` of any :class:`~zerosum.query.ScoringStrategy`, with coldness ``beta``:

- ``power``:    ``p_i ∝ s_i^beta``              (non-negative scores: entropy, BALD, least confidence)
- ``softmax``:  ``p_i ∝ exp(beta * s_i)``
- ``softrank``: ``p_i ∝ rank_i^(-beta)``        (rank 1 = highest score; any score)

The batch is ``budget`` draws without replacement, done in one step with the Gumbel-top-k trick
(``top-k of log p_i + Gumbel noise``), from a generator seeded by ``(seed, labeled count)``: the same
batch on every rank and on a resumed run.
"""

from __future__ import annotations

from typing import Literal

import torch

from zerosum.query.scoring import ScoringStrategy

MODES = ("power", "softmax", "softrank")


def stochastic_log_weights(scores: torch.Tensor, mode: str, beta: float) -> torch.Tensor:
    """``log p_i`` (up to a constant) of ``mode`` with coldness ``beta``."""
    s = scores.double().cpu()
    if mode == "power":
        if (s < 0).any():
            raise ValueError(f"mode: 'power' needs non-negative scores, the smallest is {float(s.min()):.4g}; allowed: "
                             "'softmax' or 'softrank' for this score")
        return beta * torch.log(s.clamp_min(1e-300))
    if mode == "softmax":
        return beta * s
    if mode == "softrank":
        rank = torch.empty_like(s)
        rank[torch.sort(s, descending=True, stable=True).indices] = torch.arange(1, len(s) + 1, dtype=s.dtype)
        return -beta * torch.log(rank)
    raise ValueError(f"mode: got {mode!r}; allowed: {', '.join(MODES)}")


def gumbel_top_k(log_weights: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Positions of ``k`` draws without replacement with probabilities ``∝ exp(log_weights)``."""
    u = torch.rand(len(log_weights), generator=generator, dtype=torch.float64).clamp(1e-300, 1.0 - 1e-16)
    keys = log_weights - torch.log(-torch.log(u))
    return torch.sort(keys, descending=True, stable=True).indices[:k]


class StochasticBatchStrategy(ScoringStrategy):
    """Sample the batch from the scores of ``strategy`` (Kirsch et al. 2023).

    Args:
        strategy: the scoring strategy whose scores are sampled from (entropy, margin, BALD, ...).
        mode: ``"power"``, ``"softmax"`` or ``"softrank"``.
        beta: coldness: 0 is uniform sampling, large values approach top-k (the paper uses 1).
        seed: seed of the draws (combined with the labeled count: fresh draws every query).
    """

    def __init__(self, strategy: ScoringStrategy, mode: Literal["power", "softmax", "softrank"] = "power",
                 beta: float = 1.0, seed: int = 0):
        if not isinstance(strategy, ScoringStrategy):
            raise TypeError(f"strategy: got {type(strategy).__name__}; allowed: a ScoringStrategy (entropy, margin, "
                            "least confidence, BALD, ...)")
        if mode not in MODES:
            raise ValueError(f"mode: got {mode!r}; allowed: {', '.join(MODES)}")
        if beta < 0:
            raise ValueError(f"beta: got {beta}; allowed: a number >= 0")
        self.strategy, self.mode, self.beta, self.seed = strategy, mode, float(beta), int(seed)

    def score(self, trainer, module, pool):
        return self.strategy.score(trainer, module, pool)

    def pick(self, scores: torch.Tensor, indices: torch.Tensor, budget: int, pool) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + pool.num_labeled)
        positions = gumbel_top_k(stochastic_log_weights(scores, self.mode, self.beta), budget, g)
        return indices.cpu()[positions]

