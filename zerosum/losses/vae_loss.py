"""The beta-VAE objective of VAAL (Sinha et al., ICCV 2019, Eq. 1), written as a loss to minimise.

Eq. 1 maximises ``E[log p(x|z)] - beta * KL(q(z|x) || N(0, I))`` on the labeled and on the unlabeled
batch; with a Gaussian decoder the negative log-likelihood is the squared reconstruction error, so
per batch the loss is ``MSE(recon, x) + beta * KL``. Scaling (our choice, the paper is silent): both
terms are averaged over their elements (pixels for the MSE, as in the official code; latent
dimensions and batch for the KL), so each is O(1) like the BCE of Eq. 2 and the paper's lambda1,
lambda2 keep their meaning as relative weights. (The official code sums the KL over latent
dimensions *and the batch*, which ties its weight to the batch size and collapses the posterior.)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` averaged over latent dimensions and the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean()


def beta_vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  beta: float = 1.0) -> torch.Tensor:
    """Negative of one stream's term of Eq. 1: ``MSE(recon, x) + beta * KL(q(z|x) || p(z))``."""
    return F.mse_loss(recon, x) + beta * kl_to_standard_normal(mu, logvar)


class BetaVAELoss(nn.Module):
    """Module form of :func:`beta_vae_loss` (``beta`` fixed at construction; 1 in all paper settings)."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if beta < 0:
            raise ValueError(f"BetaVAELoss: beta must be >= 0, got {beta}")
        self.beta = beta

    def forward(self, recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return beta_vae_loss(recon, x, mu, logvar, self.beta)
