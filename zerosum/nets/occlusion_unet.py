"""ADIOS's occlusion network as published (Shi et al. 2022, Sec. 3 and Appendix; the official code's
``src/utils/unet.py``, adapted there from GENESIS): a light U-Net with one ``conv3x3 - norm - ReLU``
per level, widths capped at twice the base width, nearest-neighbour down/up-sampling and an MLP
bottleneck, followed by a 1x1 conv to N channels and a softmax over them, so the N soft masks
partition every pixel.

Widths for ``L`` levels and base width ``c`` (the official lists for L = 4, 5, 6, generalised):
encoder ``[c] * (L - 3) + [2c] * 3`` (every level ``2c`` below 4 levels except the first),
decoder ``[2c, 2c] + [c] * (L - 2)``; the bottleneck maps the ``2c x s x s`` bottom feature map
(``s = image_size / 2**(L-1)``) through ``Linear(., 128) - ReLU - Linear(128, 128) - ReLU -
Linear(128, .) - ReLU``. At STL-10 SimCLR settings (96 px, c = 128, L = 5) that is 7.6M parameters
and 9.2 GFLOP per image, against 0.67 GFLOP for the ResNet-18 encoder.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from zerosum.nets.unet import NORMS, norm_layer


def default_num_blocks(image_size: int) -> int:
    """The official depth ``int(log2(image_size) - 1)`` (5 at 96 px, 6 at 224 px), at least 1."""
    return max(1, int(math.log2(image_size) - 1))


def official_widths(base_width: int, num_blocks: int) -> tuple[list[int], list[int]]:
    """Encoder and decoder output widths of the official U-Net (see the module docstring)."""
    c, n = base_width, num_blocks
    enc = [c if i < max(1, n - 3) else 2 * c for i in range(n)]
    dec = [2 * c if i < min(2, n - 1) else c for i in range(n)]
    return enc, dec


class ConvNormReLU(nn.Sequential):
    """One ``conv3x3 - norm - ReLU`` (the conv has a bias only without a norm, as the official)."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        kind = NORMS[norm]
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, bias=kind == "none"), norm_layer(kind, c_out),
                         nn.ReLU(inplace=True))


class OcclusionUNet(nn.Module):
    """The official ADIOS occlusion model ``M: B x C x H x W -> B x N x H x W`` (soft masks, softmax over N).

    Args:
        in_channels: image channels.
        num_masks: N, the number of masks.
        base_width: the official ``mask_fbase`` (widths are ``base_width`` and ``2 * base_width``).
        num_blocks: resolution levels (the official ``num_blocks``); default ``int(log2(image_size) - 1)``.
        image_size: input side in pixels; the MLP bottleneck is built for it.
        norm: ``group`` (``gn``, 8 groups), ``instance`` (``in``) or ``none`` (``no``), the official ``unet_norm``.
        bottleneck_dim: hidden width of the MLP bottleneck (128 in the official code).
    """

    def __init__(self, in_channels: int = 3, num_masks: int = 4, base_width: int = 32, num_blocks: Optional[int] = None,
                 image_size: int = 32, norm: str = "group", bottleneck_dim: int = 128):
        super().__init__()
        if num_masks < 1:
            raise ValueError(f"num_masks: {num_masks}; allowed: an integer >= 1")
        if norm not in NORMS:
            raise ValueError(f"norm: {norm!r}; allowed: {sorted(NORMS)}")
        if base_width < 1 or bottleneck_dim < 1:
            raise ValueError(f"base_width, bottleneck_dim: {base_width}, {bottleneck_dim}; allowed: integers >= 1")
        num_blocks = default_num_blocks(image_size) if num_blocks is None else num_blocks
        if num_blocks < 1 or image_size // 2 ** (num_blocks - 1) < 1:
            raise ValueError(f"num_blocks: {num_blocks} at image_size {image_size}; allowed: 1 <= num_blocks <= "
                             f"{int(math.log2(image_size)) + 1}")
        enc, dec = official_widths(base_width, num_blocks)
        self.num_masks, self.image_size = num_masks, image_size
        self.down = nn.ModuleList(ConvNormReLU(c_in, c_out, norm) for c_in, c_out in zip([in_channels, *enc[:-1]], enc))
        dec_in = [enc[-1] + enc[-1]] + [dec[i - 1] + enc[-1 - i] for i in range(1, num_blocks)]
        self.up = nn.ModuleList(ConvNormReLU(c_in, c_out, norm) for c_in, c_out in zip(dec_in, dec))
        self.sizes = [image_size]
        for _ in range(num_blocks - 1):
            self.sizes.append(self.sizes[-1] // 2)  # nearest-neighbour halving, as F.interpolate(scale 0.5)
        flat = enc[-1] * self.sizes[-1] ** 2
        self.bottleneck = nn.Sequential(nn.Flatten(), nn.Linear(flat, bottleneck_dim), nn.ReLU(inplace=True),
                                        nn.Linear(bottleneck_dim, bottleneck_dim), nn.ReLU(inplace=True),
                                        nn.Linear(bottleneck_dim, flat), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(dec[-1], num_masks, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"image_size: the occlusion net was built for {self.image_size} px, got images of "
                             f"{tuple(x.shape[-2:])}; allowed: {self.image_size} x {self.image_size}")
        skips = []
        h = x
        for i, block in enumerate(self.down):
            h = block(h)
            skips.append(h)
            if i < len(self.down) - 1:
                h = F.interpolate(h, size=self.sizes[i + 1], mode="nearest")
        h = self.bottleneck(h).view_as(skips[-1])
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips[-1 - i]], dim=1))
            if i < len(self.up) - 1:
                h = F.interpolate(h, size=skips[-2 - i].shape[-2:], mode="nearest")
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(dim=1)
