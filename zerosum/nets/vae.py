"""The beta-VAE of VAAL (Sinha et al., ICCV 2019, Eq. 1): a convolutional encoder to a Gaussian
posterior ``q(z|x) = N(mu, diag(exp(logvar)))`` and a mirrored transposed-convolution decoder.

Encoder: ``num_blocks`` x [conv 4x4 stride 2 + BN + ReLU] with widths ``base_width * 2**i`` (the
paper's 128-256-512-1024 for ``base_width=128, num_blocks=4``), then two linear heads for ``mu`` and
``logvar`` of a ``latent_dim``-dimensional code (32 for CIFAR, 64 for Caltech/ImageNet, 128 for
segmentation). Decoder: linear back to the bottom feature map, then the same blocks reversed as
transposed convolutions, the last one mapping to the image channels without BN or activation (the
reconstruction lives in the data's normalised space and is compared by MSE).

The KL term of Eq. 1 contains ``exp(logvar)``: an unbounded ``logvar`` overflows it (the "KL blow-up"
known from the official code). ``logvar`` is therefore clamped to ``[-logvar_limit, logvar_limit]``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class VAEOutput(NamedTuple):
    recon: torch.Tensor
    z: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class BetaVAE(nn.Module):
    """Args:
        in_channels: image channels.
        image_size: image side in pixels; must be divisible by ``2**num_blocks``.
        latent_dim: dimension ``d`` of the latent code.
        base_width: channels of the first encoder block (doubled per block); 128 in the paper, 8-32
            for CPU runs.
        num_blocks: number of stride-2 blocks (4 in the paper).
        logvar_limit: ``logvar`` is clamped to this magnitude (guards the KL's ``exp(logvar)``).
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32, latent_dim: int = 32, base_width: int = 128,
                 num_blocks: int = 4, logvar_limit: float = 10.0):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("latent_dim", latent_dim), ("base_width", base_width),
                            ("num_blocks", num_blocks)):
            if value < 1:
                raise ValueError(f"BetaVAE: {name} must be a positive integer, got {value}")
        if image_size % 2 ** num_blocks:
            raise ValueError(
                f"BetaVAE: image_size={image_size} must be divisible by 2**num_blocks={2 ** num_blocks}; "
                "lower num_blocks or resize the images (e.g. DigitsDataModule(image_size=32))")
        if logvar_limit <= 0:
            raise ValueError(f"BetaVAE: logvar_limit must be positive, got {logvar_limit}")
        self.latent_dim, self.logvar_limit = latent_dim, logvar_limit
        widths = [base_width * 2 ** i for i in range(num_blocks)]
        bottom = image_size // 2 ** num_blocks
        flat = widths[-1] * bottom * bottom

        blocks: list[nn.Module] = []
        c_in = in_channels
        for w in widths:
            blocks += [nn.Conv2d(c_in, w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c_in = w
        self.encoder = nn.Sequential(*blocks, nn.Flatten())
        self.fc_mu = nn.Linear(flat, latent_dim)
        self.fc_logvar = nn.Linear(flat, latent_dim)

        up: list[nn.Module] = [nn.Linear(latent_dim, flat), nn.Unflatten(1, (widths[-1], bottom, bottom))]
        rev = widths[::-1]
        for w_in, w_out in zip(rev[:-1], rev[1:]):
            up += [nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(w_out),
                   nn.ReLU(inplace=True)]
        up.append(nn.ConvTranspose2d(widths[0], in_channels, 4, stride=2, padding=1))
        self.decoder = nn.Sequential(*up)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z|x)``, ``logvar`` clamped to ``+-logvar_limit``."""
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h).clamp(-self.logvar_limit, self.logvar_limit)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` while training, ``mu`` in eval mode."""
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return VAEOutput(self.decode(z), z, mu, logvar)
