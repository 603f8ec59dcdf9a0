"""ADIOS's occlusion model (Shi et al. 2022, Sec. 3): a U-Net whose head turns every pixel into a
distribution over N masks (1x1 conv to N channels, softmax over the channels), so the N soft masks
partition the image: ``sum_n m_n(p) = 1`` at every pixel ``p``."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

NORMS = {"group": "group", "gn": "group", "instance": "instance", "in": "instance", "none": "none", "no": "none"}


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {sorted(NORMS)}, got {kind!r}")
    kind = NORMS[kind]
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """Two ``conv3x3 - norm - ReLU`` layers."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), norm_layer(norm, c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), norm_layer(norm, c_out), nn.ReLU(inplace=True),
        )


class MaskUNet(nn.Module):
    """U-Net occlusion model ``M: B x C x H x W -> B x N x H x W`` (soft masks summing to 1 over N).

    Args:
        in_channels: image channels.
        num_masks: N, the number of masks.
        base_width: channels of the first block (the official ``mask_fbase``); block ``i`` has
            ``base_width * min(2**i, 8)``.
        num_blocks: resolution levels (``num_blocks - 1`` poolings); default ``log2(image_size) - 1``
            as the reference code, at least 1.
        image_size: only used for the default ``num_blocks``.
        norm: ``group`` (``gn``), ``instance`` (``in``) or ``none`` (``no``); batch norm is avoided on
            purpose so a sample's masks never depend on the rest of the batch.
    """

    def __init__(self, in_channels: int = 3, num_masks: int = 4, base_width: int = 32,
                 num_blocks: Optional[int] = None, image_size: int = 32, norm: str = "group"):
        super().__init__()
        if num_masks < 1:
            raise ValueError(f"num_masks (N) must be >= 1, got {num_masks}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
        if num_blocks is None:
            num_blocks = max(1, int(math.log2(image_size)) - 1)
        if num_blocks < 1 or 2 ** (num_blocks - 1) > image_size:
            raise ValueError(f"num_blocks={num_blocks} does not fit image_size={image_size} (need 1 <= 2**(num_blocks-1) <= image_size)")
        widths = [base_width * min(2**i, 8) for i in range(num_blocks)]
        self.num_masks = num_masks
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(ConvBlock(c, w, norm))
            c = w
        self.up = nn.ModuleList(ConvBlock(widths[i + 1] + widths[i], widths[i], norm) for i in reversed(range(num_blocks - 1)))
        self.head = nn.Conv2d(widths[0], num_masks, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for i, block in enumerate(self.down):
            if i > 0:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1))
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(dim=1)
