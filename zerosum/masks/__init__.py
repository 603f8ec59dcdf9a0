"""Fixed (non-learned) mask generators: baselines for ADIOS's learned occlusion model."""

from zerosum.masks.block import BlockMask
from zerosum.masks.random_patch import RandomPatchMask

__all__ = ["BlockMask", "RandomPatchMask"]
