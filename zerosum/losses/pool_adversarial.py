"""VAAL's adversarial pair (Sinha et al., ICCV 2019): the labeled-vs-unlabeled game in latent space.

Both losses take the discriminator's *logits* on the latent means of a labeled batch (``logits_l``)
and an unlabeled batch (``logits_u``); ``D = sigmoid(logits)`` is the probability of "labeled".

- :class:`VAEAdversarialLoss`, Eq. 2: ``-E[log D(mu_L)] - E[log D(mu_U)]``; the VAE wants every
  sample to look labeled.
- :class:`PoolDiscriminatorLoss`, Eq. 3: ``-E[log D(mu_L)] - E[log(1 - D(mu_U))]``; the discriminator
  separates the pools.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def vae_adversarial_loss(logits_l: torch.Tensor, logits_u: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``BCE(D(mu_L), 1) + BCE(D(mu_U), 1)``."""
    return _bce(logits_l, 1.0) + _bce(logits_u, 1.0)


def pool_discriminator_loss(logits_l: torch.Tensor, logits_u: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``BCE(D(mu_L), 1) + BCE(D(mu_U), 0)``."""
    return _bce(logits_l, 1.0) + _bce(logits_u, 0.0)


class VAEAdversarialLoss(nn.Module):
    """Eq. 2 as a module (see :func:`vae_adversarial_loss`)."""

    def forward(self, logits_l: torch.Tensor, logits_u: torch.Tensor) -> torch.Tensor:
        return vae_adversarial_loss(logits_l, logits_u)


class PoolDiscriminatorLoss(nn.Module):
    """Eq. 3 as a module (see :func:`pool_discriminator_loss`)."""

    def forward(self, logits_l: torch.Tensor, logits_u: torch.Tensor) -> torch.Tensor:
        return pool_discriminator_loss(logits_l, logits_u)
