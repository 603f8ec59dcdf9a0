"""The beta-VAE objective of VAAL (Sinha et al., ICCV 2019, Eq. 1), written as a loss to minimise.

Eq. 1 maximises ``E[log p(x|z)] - beta * KL(q(z|x) || N(0, I))`` on the labeled and on the unlabeled
batch; with a Gaussian decoder the negative log-likelihood is the squared reconstruction error, so
per batch the loss is ``MSE(recon, x) + beta * KL``. The paper is silent on the scaling; two are offered:

- ``kl_reduction="sum"`` (default, the official code's, ``solver.py: vae_loss``): the MSE is averaged
  over pixels and batch (``nn.MSELoss()``) while the KL is **summed** over latent dimensions and the
  batch (``-0.5 * torch.sum(1 + logvar - mu^2 - exp(logvar))``). Its effective weight is ``B * d``
  times that of a per-element mean (2048 at the official B = 64, d = 32): the code is pulled hard
  towards the prior, which keeps the VAE from winning the game with a latent space the discriminator
  cannot read, and it ties the VAE/discriminator balance to the batch size (as the paper's results do).
- ``kl_reduction="mean"``: the KL averaged over latent dimensions and batch, so both terms are O(1) and
  independent of ``B`` and ``d``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

KL_REDUCTIONS = ("sum", "mean")


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` averaged (``"mean"``) or summed (``"sum"``) over latent
    dimensions and the batch."""
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    if reduction == "sum":
        return kl.sum()
    if reduction == "mean":
        return kl.mean()
    raise ValueError(f"kl_reduction: unknown reduction {reduction!r}; allowed: {', '.join(KL_REDUCTIONS)}")


def beta_vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  beta: float = 1.0, kl_reduction: str = "sum") -> torch.Tensor:
    """Negative of one stream's term of Eq. 1: ``MSE(recon, x) + beta * KL(q(z|x) || p(z))``."""
    return F.mse_loss(recon, x) + beta * kl_to_standard_normal(mu, logvar, kl_reduction)


class BetaVAELoss(nn.Module):
    """Module form of :func:`beta_vae_loss`.

    Args:
        beta: weight of the KL term (1 in all paper settings).
        kl_reduction: ``"sum"`` over latent dimensions and batch (official code) or ``"mean"``.
    """

    def __init__(self, beta: float = 1.0, kl_reduction: Literal["sum", "mean"] = "sum"):
        super().__init__()
        if beta < 0:
            raise ValueError(f"beta: must be >= 0, got {beta}; allowed: a non-negative number")
        if kl_reduction not in KL_REDUCTIONS:
            raise ValueError(f"kl_reduction: unknown reduction {kl_reduction!r}; allowed: {', '.join(KL_REDUCTIONS)}")
        self.beta, self.kl_reduction = beta, kl_reduction

    def forward(self, recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return beta_vae_loss(recon, x, mu, logvar, self.beta, self.kl_reduction)
