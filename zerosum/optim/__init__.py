"""Optimizers and schedules (own small implementations; lightning-bolts is dead for Lightning 2.x)
and the spec form every module takes them in (:mod:`zerosum.optim.spec`)."""

from zerosum.optim.lars import LARS
from zerosum.optim.spec import build, spec
from zerosum.optim.warmup_cosine import LinearWarmupCosineLR

__all__ = ["LARS", "LinearWarmupCosineLR", "build", "spec"]
