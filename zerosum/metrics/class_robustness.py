"""Per-class natural, boundary and robust error (Zhou et al. 2023, Sec. 6; Xu et al. 2021).

For the samples of class c:
    natural error   R_nat(c) = P(f(x) != y)
    boundary error  R_bdy(c) = P(f(x) == y, f(x') != y)      (correct, but not robustly)
    robust error    R_rob(c) = P(f(x') != y) = R_nat(c) + R_bdy(c) when x' starts at x
with x' the attack. :meth:`ClassRobustnessErrors.compute` returns the per-class vectors and their
average and worst class (CAAT's fairness measures). States are sums, so DDP reduction is exact.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

KINDS = ("natural", "boundary", "robust")


class ClassRobustnessErrors(Metric):
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.add_state("count", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        for kind in KINDS:
            self.add_state(kind, torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, clean_pred: Tensor, adv_pred: Tensor, target: Tensor) -> None:
        """Predicted classes on the clean and the attacked inputs, and the true labels (all (B,))."""
        if not (clean_pred.shape == adv_pred.shape == target.shape):
            raise ValueError("clean_pred, adv_pred and target must have the same shape (B,)")
        nat = clean_pred != target
        rob = adv_pred != target
        c = self.num_classes
        self.count += torch.bincount(target, minlength=c)
        self.natural += torch.bincount(target[nat], minlength=c)
        self.boundary += torch.bincount(target[~nat & rob], minlength=c)
        self.robust += torch.bincount(target[rob], minlength=c)

    def compute(self) -> dict[str, Tensor]:
        """``{kind: (C,) per-class error, kind_avg, kind_worst}`` over classes seen at least once."""
        seen = self.count > 0
        out: dict[str, Tensor] = {}
        for kind in KINDS:
            per_class = getattr(self, kind).float() / self.count.clamp_min(1).float()
            per_class = torch.where(seen, per_class, torch.full_like(per_class, float("nan")))
            out[kind] = per_class
            out[f"{kind}_avg"] = per_class[seen].mean() if seen.any() else torch.tensor(float("nan"))
            out[f"{kind}_worst"] = per_class[seen].max() if seen.any() else torch.tensor(float("nan"))
        return out
