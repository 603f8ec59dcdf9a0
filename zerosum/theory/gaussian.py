"""Ilyas et al. (2019), section 4: maximum-likelihood classification of two Gaussians, exact.

Data (Eq. 10): ``y ~ U{-1, +1}``, ``x ~ N(y μ*, Σ*)``. Parameters ``Θ = (μ, Σ)`` are learned by
(robust) maximum likelihood (Eqs. 11, 13) and classify by ``sign(x^T Σ^{-1} μ)`` (Eq. 12).

Conventions (everything in float64):

- ``nll(x, y, μ, Σ) = ½ (x - yμ)^T Σ^{-1} (x - yμ) + ½ log det Σ + d/2 log 2π`` (the Gaussian NLL).
- Theorem 1's Lagrangian adversary (Eq. 14) is taken with a *squared* penalty,
  ``max_δ ℓ(x + δ) - (C/2) ||δ||²``, the form under which Eq. (15) holds exactly: its maximiser is
  ``δ = (CΣ - I)^{-1} (x - yμ)`` (needs ``CΣ ≻ I``) and
  ``E[(x+δ-yμ)^T Σ^{-1} (x+δ-yμ)] - E[(x-yμ)^T Σ^{-1} (x-yμ)] = tr[(I + (CΣ* - I)^{-1})²] - d``
  at ``Θ = Θ*`` (Eq. 15; the left side is twice the NLL gap, the penalty not counted).
- The L2 adversary ``max_{||δ|| ≤ ε} ℓ(x + δ)`` is solved exactly per sample:
  ``δ = (λΣ - I)^{-1} (x - yμ)`` with the multiplier ``λ > 1/σ_min(Σ)`` found by bisection so that
  ``||δ|| = ε``.
- Robust MLE (Eq. 13) is adversarial training: gradient descent on ``(μ, Σ = AA^T)`` of the mean NLL
  at ``x + δ``, the inner maximisation solved per sample at each step (Danskin: δ is held fixed).
- Theorem 2: with a constant multiplier λ (the Lagrangian adversary with ``C = λ``), the fixed
  point is ``Σ_r = ½Σ* + I/λ + (Σ*/λ + Σ*²/4)^{1/2}`` and ``μ_r = μ*``.
- Theorem 3: the classifier's input gradient is ``Σ^{-1} μ``; its worst-case cosine with ``μ`` over
  all ``μ`` is ``2√κ / (1 + κ)`` (κ the condition number of Σ), larger for the robust Σ_r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

DTYPE = torch.float64


def sample(n: int, mu: Tensor, sigma: Tensor, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """``n`` samples of Eq. (10): labels ±1 and ``x ~ N(y μ, Σ)``."""
    mu, sigma = mu.to(DTYPE), sigma.to(DTYPE)
    y = torch.randint(0, 2, (n,), generator=generator).to(DTYPE) * 2 - 1
    z = torch.randn(n, len(mu), generator=generator, dtype=DTYPE)
    return y[:, None] * mu + z @ torch.linalg.cholesky(sigma).T, y


def nll(x: Tensor, y: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """Per-sample Gaussian negative log-likelihood ``ℓ(x; yμ, Σ)``."""
    v = x - y[:, None] * mu
    quad = (v * torch.linalg.solve(sigma, v.T).T).sum(1)
    return 0.5 * quad + 0.5 * torch.logdet(sigma) + 0.5 * len(mu) * math.log(2 * math.pi)


def standard_mle(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form MLE of Eq. (11): ``μ = mean(y x)``, ``Σ = mean((x - yμ)(x - yμ)^T)``."""
    mu = (y[:, None] * x).mean(0)
    v = x - y[:, None] * mu
    return mu, v.T @ v / len(x)


def classify(x: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """Eq. (12): ``sign(x^T Σ^{-1} μ)``."""
    return torch.sign(x @ torch.linalg.solve(sigma, mu))


def lagrangian_adversary(x: Tensor, y: Tensor, mu: Tensor, sigma: Tensor, C: float) -> Tensor:
    """Maximiser of ``ℓ(x + δ) - (C/2)||δ||²`` (Theorem 1, Eq. 14): ``δ = (CΣ - I)^{-1}(x - yμ)``."""
    d = len(mu)
    if torch.linalg.eigvalsh(sigma).min() * C <= 1:
        raise ValueError(f"C={C} too small: the Lagrangian adversary needs C * sigma_min(Sigma) > 1 "
                         "(otherwise the inner maximisation is unbounded)")
    v = x - y[:, None] * mu
    return torch.linalg.solve(C * sigma - torch.eye(d, dtype=sigma.dtype), v.T).T


def l2_adversary(x: Tensor, y: Tensor, mu: Tensor, sigma: Tensor, eps: float,
                 iters: int = 80) -> tuple[Tensor, Tensor]:
    """Exact ``argmax_{||δ||_2 ≤ ε} ℓ(x + δ; yμ, Σ)`` per sample, and the multipliers λ (Eq. 13).

    The maximiser lies on the sphere with ``δ = (λΣ - I)^{-1} v``, ``v = x - yμ``; in Σ's eigenbasis
    ``||δ(λ)||² = Σ_j w_j² / (λ s_j - 1)²`` decreases on ``(1/s_min, ∞)``, so λ is found by bisection.
    """
    if eps <= 0:
        return torch.zeros_like(x), torch.full((len(x),), math.inf, dtype=x.dtype)
    s, U = torch.linalg.eigh(sigma)
    w = (x - y[:, None] * mu) @ U
    lo = torch.full((len(x),), 1.0 / s[0].item(), dtype=x.dtype)
    hi = (w.norm(dim=1) / eps + 1) / s[0]  # ||δ(hi)|| <= ||w|| / (hi s_min - 1) = eps
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        too_long = ((w / (mid[:, None] * s - 1)) ** 2).sum(1) > eps ** 2
        lo, hi = torch.where(too_long, mid, lo), torch.where(too_long, hi, mid)
    lam = 0.5 * (lo + hi)
    delta = (w / (lam[:, None] * s - 1)) @ U.T
    return delta, lam


def theorem1_gap(sigma_star: Tensor, C: float) -> Tensor:
    """Eq. (15): ``tr[(I + (CΣ* - I)^{-1})²] - d``."""
    d = sigma_star.shape[0]
    eye = torch.eye(d, dtype=sigma_star.dtype)
    m = eye + torch.linalg.inv(C * sigma_star - eye)
    return torch.trace(m @ m) - d


def _sym_fn(a: Tensor, fn) -> Tensor:
    s, U = torch.linalg.eigh(a)
    return (U * fn(s)) @ U.T


def theorem2_sigma(sigma_star: Tensor, lam: float) -> Tensor:
    """Theorem 2: ``Σ_r = ½Σ* + I/λ + (Σ*/λ + Σ*²/4)^{1/2}``."""
    eye = torch.eye(sigma_star.shape[0], dtype=sigma_star.dtype)
    root = _sym_fn(sigma_star / lam + sigma_star @ sigma_star / 4, torch.sqrt)
    return 0.5 * sigma_star + eye / lam + root


@dataclass
class RobustFit:
    mu: Tensor
    sigma: Tensor
    lam: Optional[Tensor]  # per-sample multipliers of the last inner maximisation (L2 adversary)
    losses: list


def _inner(x, y, mu, sigma, eps, C):
    if C is not None:
        return lagrangian_adversary(x, y, mu, sigma, C), None
    return l2_adversary(x, y, mu, sigma, eps)


def robust_mle(x: Tensor, y: Tensor, *, eps: float = 0.0, C: Optional[float] = None, steps: int = 1000,
               lr: float = 0.02, init: Optional[tuple[Tensor, Tensor]] = None) -> RobustFit:
    """Adversarial training of ``(μ, Σ)`` (Eq. 13), the inner maximisation solved exactly per sample.

    Args:
        eps: radius of the L2 adversary (0 = standard MLE).
        C: use the Lagrangian adversary of Theorem 1 with this constant instead of the ε-ball.
        steps / lr: Adam steps on ``μ`` and ``A`` (``Σ = AA^T``), cosine-decayed learning rate. (Alternating the inner maximisation
            with the exact MLE of the perturbed data is *not* used: that map oscillates and can leave
            the region ``CΣ ≻ I``.)
        init: starting ``(μ, Σ)`` (default: the standard MLE, inflated when ``C`` is given so that the
            Lagrangian problem is defined).
    """
    if C is None and eps < 0:
        raise ValueError(f"eps must be >= 0; got {eps}")
    mu0, sigma0 = init if init is not None else standard_mle(x, y)
    if init is None and C is not None:
        sigma0 = sigma0 + 2.0 / C * torch.eye(len(mu0), dtype=DTYPE)
    mu = mu0.clone().to(DTYPE).requires_grad_(True)
    chol = torch.linalg.cholesky(sigma0.to(DTYPE)).clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, chol], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)  # decays to 0: a precise end point
    lam, losses = None, []
    for _ in range(steps):
        sigma = chol @ chol.T
        with torch.no_grad():
            delta, lam = _inner(x, y, mu, sigma, eps, C)
        loss = nll(x + delta, y, mu, sigma).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(loss.item())
    with torch.no_grad():
        sigma = chol @ chol.T
        _, lam = _inner(x, y, mu, sigma, eps, C)
    return RobustFit(mu.detach(), sigma.detach(), lam, losses)


def gradient_alignment(mu: Tensor, sigma: Tensor) -> Tensor:
    """Cosine between the classifier's input gradient ``Σ^{-1}μ`` and ``μ`` (Theorem 3)."""
    g = torch.linalg.solve(sigma, mu)
    return (g @ mu) / (g.norm() * mu.norm())


def worst_case_alignment(sigma: Tensor) -> Tensor:
    """``min_μ cos(μ, Σ^{-1}μ) = 2√κ / (1 + κ)`` (Kantorovich), κ = condition number of Σ."""
    s = torch.linalg.eigvalsh(sigma)
    kappa = s[-1] / s[0]
    return 2 * kappa.sqrt() / (1 + kappa)


def condition_number(sigma: Tensor) -> Tensor:
    s = torch.linalg.eigvalsh(sigma)
    return s[-1] / s[0]
