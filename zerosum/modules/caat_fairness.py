"""CAAT's adaptive per-class bounds and weights (Zhou et al. 2023; official code ``utils.py``:
``frl_train``, ``normalize_lambda``, ``cost_sensitive``), the fairness half of the method.

Before each epoch the official code measures, on a validation set, every class's clean error and
boundary error (correct when clean, wrong under PGD-20 at 8/255) and raises three multiplier vectors
for the classes that are worse than average by more than a margin (``bound0 = bound1 = 0.07``):

    gamma_clean = err_clean(c) - err_clean(all) - bound0
    gamma_bdy   = err_bdy(c)   - err_bdy(all)   - bound1
    lambda_ce  <- normalize(lambda_ce  + rate1     * gamma_clean)
    lambda_kl  <- normalize(lambda_kl  + 2 * rate1 * gamma_bdy)
    lambda_eps <- lambda_eps + rate2 * gamma_bdy

(``normalize``: clip at 0, rescale to sum ``lim`` when the sum exceeds it; rate1 0.05, halved every
40 epochs; rate2 0.2; lim 0.5). The training loss weights a class's CE and KL terms by
``1/C + lambda(c) - mean(lambda)`` (the cost-sensitive weights of FRL, Xu et al. 2021, written for
any C) and both perturbation radii by ``clamp(exp(2 lambda_eps(c)), 0.98, 2.5)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: (min, max) of the per-class radius multiplier exp(2 lambda_eps) (official ``cost_sensitive``)
EPS_MULTIPLIER_RANGE = (0.98, 2.5)


def normalize_lambda(lmbda: Tensor, limit: float) -> Tensor:
    """Clip at 0; rescale to sum ``limit`` if the sum exceeds it (official ``normalize_lambda``)."""
    lmbda = lmbda.clamp_min(0)
    total = lmbda.sum()
    return lmbda * (limit / total) if total > limit else lmbda


def class_weights(lmbda: Tensor) -> Tensor:
    """``1/C + lambda(c) - mean(lambda)``: per-class loss weights, 1/C each at lambda = 0."""
    return 1.0 / len(lmbda) + lmbda - lmbda.mean()


def eps_multipliers(lmbda_eps: Tensor) -> Tensor:
    """``clamp(exp(2 lambda_eps), 0.98, 2.5)``: per-class multipliers of both perturbation radii."""
    return torch.exp(2 * lmbda_eps).clamp(*EPS_MULTIPLIER_RANGE)


def update_lambdas(lmbda: Tensor, clean_err: Tensor, boundary_err: Tensor, clean_total: float, boundary_total: float,
                   *, clean_bound: float, boundary_bound: float, rate: float, eps_rate: float,
                   limit: float) -> Tensor:
    """One update of ``lmbda`` (shape (3, C): CE weights, KL weights, radii) from the validation
    per-class errors (NaN for a class without validation samples: left unchanged)."""
    seen = ~(torch.isnan(clean_err) | torch.isnan(boundary_err))
    gamma_clean = torch.where(seen, clean_err - clean_total - clean_bound, torch.zeros_like(clean_err))
    gamma_bdy = torch.where(seen, boundary_err - boundary_total - boundary_bound, torch.zeros_like(boundary_err))
    return torch.stack([
        normalize_lambda(lmbda[0] + rate * gamma_clean, limit),
        normalize_lambda(lmbda[1] + 2 * rate * gamma_bdy, limit),
        lmbda[2] + eps_rate * gamma_bdy,
    ])
