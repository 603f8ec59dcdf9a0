"""Optimizers and schedules (own small implementations; lightning-bolts is dead for Lightning 2.x)."""

from zerosum.optim.lars import LARS
from zerosum.optim.warmup_cosine import LinearWarmupCosineLR

__all__ = ["LARS", "LinearWarmupCosineLR"]
