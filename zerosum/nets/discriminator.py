"""VAAL's discriminator D (Sinha et al., ICCV 2019, Eqs. 2-3): an MLP on the latent mean ``mu``
ending in a sigmoid, ``D(mu) = P(sample is labeled)``.

The paper uses a 5-layer MLP, and so does the official code (``model.py: Discriminator``,
``z-512-512-512-512-1``). ``num_layers`` counts the linear layers (default 5). Losses use :meth:`logits` with
``binary_cross_entropy_with_logits`` (the same value as BCE on the sigmoid, without its saturation).
"""

from __future__ import annotations

import torch
from torch import nn


class LatentDiscriminator(nn.Module):
    """Args:
        latent_dim: input dimension (the VAE's ``d``).
        hidden_dim: width of the hidden layers.
        num_layers: number of linear layers (>= 1; 1 is logistic regression on ``mu``).
    """

    def __init__(self, latent_dim: int, hidden_dim: int = 512, num_layers: int = 5):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"LatentDiscriminator: num_layers must be >= 1, got {num_layers}")
        if latent_dim < 1 or hidden_dim < 1:
            raise ValueError(f"LatentDiscriminator: latent_dim and hidden_dim must be positive, "
                             f"got {latent_dim} and {hidden_dim}")
        layers: list[nn.Module] = []
        d = latent_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(d, hidden_dim), nn.ReLU(inplace=True)]
            d = hidden_dim
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores, shape ``(B,)``."""
        return self.net(z).squeeze(-1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``D(z)`` in (0, 1): the probability that ``z`` comes from the labeled pool, shape ``(B,)``."""
        return torch.sigmoid(self.logits(z))
