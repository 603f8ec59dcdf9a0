"""What to watch in a set of masks (ADIOS, Shi et al. 2022): how much of each image every mask
covers, how alike the masks of one image are, and whether they are tailored to their image.

A healthy occluder gives N masks that each cover a real share of every image (coverage extremes
away from 0 and 1), differ from each other (low pairwise correlation) and hurt their own image more
than another image (the shuffled-mask control: the loss with each image's masks exceeds the loss
with another image's masks). Collapse shows as one mask near 1 on every image; a shape prior that
ignores the image shows as own-image and shuffled losses that are equal.
"""

from __future__ import annotations

import torch


def coverage(masks: torch.Tensor) -> torch.Tensor:
    """``B x N x H x W`` masks -> ``B x N``: the fraction of each image that each mask covers."""
    if masks.ndim != 4:
        raise ValueError(f"masks: shape {tuple(masks.shape)}; allowed: B x N x H x W")
    return masks.mean(dim=(-2, -1))


def coverage_extremes(*mask_sets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The official code's ``mask_summed_min`` / ``mask_summed_max``: per sample, the smallest and
    the largest coverage over all its masks (of every view given), averaged over the batch."""
    cov = torch.cat([coverage(m) for m in mask_sets], dim=1)
    return cov.min(dim=1).values.mean(), cov.max(dim=1).values.mean()


def pairwise_correlation(masks: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over samples and over pairs ``n < m`` of the Pearson correlation between masks ``n`` and
    ``m`` of the same image across its pixels (a mask constant over an image counts as 0)."""
    b, n = masks.shape[:2]
    if n < 2:
        return masks.new_zeros(())
    flat = masks.reshape(b, n, -1).float()
    centred = flat - flat.mean(dim=-1, keepdim=True)
    unit = centred / (centred.norm(dim=-1, keepdim=True) + eps)
    corr = unit @ unit.transpose(1, 2)  # B x N x N
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=masks.device), diagonal=1)
    return corr[:, upper].mean()


def derangement(batch: int, device=None) -> torch.Tensor:
    """Each sample's partner for the shuffled-mask control: the next sample (a cyclic shift, so no
    image keeps its own masks when ``batch > 1``)."""
    return torch.roll(torch.arange(batch, device=device), shifts=-1)
