"""Linear warm-up then cosine annealing, per optimizer step (Goyal et al. 2017 warm-up; SGDR's
cosine, Loshchilov & Hutter 2017, Eq. 5).

Our own small implementation: lightning-bolts' ``LinearWarmupCosineAnnealingLR`` is not usable with
Lightning 2.x.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class LinearWarmupCosineLR(LRScheduler):
    """At step ``t`` (``step()`` called once per optimizer step) each group's lr is

        warmup_start_lr + (base - warmup_start_lr) * t / warmup_steps                    for t < warmup_steps
        eta_min + (base - eta_min) * (1 + cos(pi * (t - W) / (total_steps - W))) / 2        afterwards

    and stays at ``eta_min`` after ``total_steps``.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, warmup_start_lr: float = 0.0,
                 eta_min: float = 0.0, last_epoch: int = -1):
        if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps > 0, got {warmup_steps}, {total_steps}")
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        self.warmup_start_lr, self.eta_min = warmup_start_lr, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, t: int) -> float:
        if t < self.warmup_steps:
            return self.warmup_start_lr + (base_lr - self.warmup_start_lr) * t / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (t - self.warmup_steps) / span)
        return self.eta_min + (base_lr - self.eta_min) * 0.5 * (1 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:
        return [self.lr_at(base, self.last_epoch) for base in self.base_lrs]
