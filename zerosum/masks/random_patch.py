"""MAE-style random patch masks (He et al. 2022, Sec. 3): a baseline occluder for ADIOS's masking
comparison (Shi et al. 2022, Sec. 4.2)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F


class RandomPatchMask(nn.Module):
    """``x: B x C x H x W -> B x 1 x H x W`` binary masks (1 = occluded): the image is cut into
    ``patch_size`` squares and ``round(mask_ratio * num_patches)`` of them, drawn uniformly per
    sample, are occluded. ``patch_size=None`` uses 16 px from 64 px images up and ``H // 8``
    below (4 px at 32 px: the same area fraction on a grid fine enough to be random)."""

    def __init__(self, mask_ratio: float = 0.75, patch_size: Optional[int] = None):
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if patch_size is not None and patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        self.mask_ratio, self.patch_size = mask_ratio, patch_size

    def patch_for(self, size: int) -> int:
        return self.patch_size or (16 if size >= 64 else max(1, size // 8))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.patch_for(min(h, w))
        gh, gw = -(-h // p), -(-w // p)
        n = gh * gw
        k = int(round(self.mask_ratio * n))
        ranks = torch.rand(b, n, device=x.device).argsort(dim=1).argsort(dim=1)
        grid = (ranks < k).to(x.dtype).view(b, 1, gh, gw)
        return F.interpolate(grid, scale_factor=p, mode="nearest")[..., :h, :w]
