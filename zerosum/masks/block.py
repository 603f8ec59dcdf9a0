"""BEiT-style block-wise masks (Bao et al. 2022, Algorithm 1): rectangles of patches with random
area and aspect ratio are added until the masked fraction reaches ``mask_ratio``. A baseline
occluder for ADIOS's masking comparison (Shi et al. 2022, Sec. 4.2)."""

from __future__ import annotations

import math
import random
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F


class BlockMask(nn.Module):
    """``x: B x C x H x W -> B x 1 x H x W`` binary masks (1 = occluded), per sample.

    Args:
        mask_ratio: target fraction of patches to occlude (BEiT: 0.4).
        patch_size: grid cell in pixels (default: 16 from 64 px up, ``H // 8`` below).
        min_patches: smallest block, in patches (BEiT: 16; scaled down for small grids).
        aspect: aspect ratios are drawn log-uniformly in ``[aspect, 1 / aspect]``.
    """

    def __init__(self, mask_ratio: float = 0.4, patch_size: Optional[int] = None, min_patches: int = 4,
                 aspect: float = 0.3, seed: Optional[int] = None):
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if not 0 < aspect <= 1:
            raise ValueError(f"aspect must be in (0, 1], got {aspect}")
        self.mask_ratio, self.patch_size, self.min_patches, self.aspect = mask_ratio, patch_size, min_patches, aspect
        self.rng = random.Random(seed)

    def _one(self, gh: int, gw: int) -> torch.Tensor:
        grid = torch.zeros(gh, gw)
        target = int(round(self.mask_ratio * gh * gw))
        min_area = min(self.min_patches, max(1, target))
        for _ in range(100):
            left = target - int(grid.sum())
            if left <= 0:
                break
            area = self.rng.uniform(min_area, max(min_area, left))
            ratio = math.exp(self.rng.uniform(math.log(self.aspect), -math.log(self.aspect)))
            bh = max(1, min(gh, int(round(math.sqrt(area * ratio)))))
            bw = max(1, min(gw, int(round(math.sqrt(area / ratio)))))
            top, lft = self.rng.randint(0, gh - bh), self.rng.randint(0, gw - bw)
            block = grid[top:top + bh, lft:lft + bw]
            if int(grid.sum()) + int((block == 0).sum()) > target and int(grid.sum()) > 0:
                continue
            block.fill_(1)
        return grid

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.patch_size or (16 if min(h, w) >= 64 else max(1, min(h, w) // 8))
        gh, gw = -(-h // p), -(-w // p)
        grids = torch.stack([self._one(gh, gw) for _ in range(b)]).unsqueeze(1).to(x.device, x.dtype)
        return F.interpolate(grids, scale_factor=p, mode="nearest")[..., :h, :w]
