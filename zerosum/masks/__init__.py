"""Fixed (non-learned) mask generators, baselines for ADIOS's learned occlusion model, and mask diagnostics."""

from zerosum.masks.block import BlockMask
from zerosum.masks.diagnostics import coverage, coverage_extremes, derangement, pairwise_correlation
from zerosum.masks.random_patch import RandomPatchMask

__all__ = ["BlockMask", "RandomPatchMask", "coverage", "coverage_extremes", "derangement", "pairwise_correlation"]
