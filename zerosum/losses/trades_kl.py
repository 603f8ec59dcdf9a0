"""The TRADES robustness regulariser (Zhang et al. 2019, Eq. 5) as a per-sample loss.

``KL(f(x) || f(x'))`` between the predictive distributions on the clean and the perturbed input: the
TRADES training loss, the loss its (and CAAT's) adversary ascends, and CAAT's second term
(Zhou et al. 2023, Eq. 10: ``beta * sum_i a_i KL``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

REDUCTIONS = ("none", "mean", "sum")


def trades_kl(adv_logits: torch.Tensor, clean: torch.Tensor, *, clean_is_prob: bool = False,
              reduction: str = "none") -> torch.Tensor:
    """``sum_k p_k (log p_k - log q_k)`` with ``p = softmax(clean)`` (or ``clean`` itself when
    ``clean_is_prob``) and ``q = softmax(adv_logits)``; per sample unless ``reduction``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
    if adv_logits.shape != clean.shape:
        raise ValueError(f"adversarial logits {tuple(adv_logits.shape)} and clean {tuple(clean.shape)} differ in shape")
    log_p = torch.log(clean.clamp_min(1e-12)) if clean_is_prob else F.log_softmax(clean, dim=1)
    loss = F.kl_div(F.log_softmax(adv_logits, dim=1), log_p, reduction="none", log_target=True).sum(dim=1)
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


class TradesKL(nn.Module):
    """Module form of :func:`trades_kl`: ``TradesKL()(adv_logits, clean_logits)``.

    ``clean_is_prob=True`` takes probabilities as the second argument, which is how the attack calls
    it: ``pgd(model, x, softmax(model(x)).detach(), loss_fn=TradesKL(clean_is_prob=True))``.
    """

    def __init__(self, clean_is_prob: bool = False, reduction: str = "none"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
        self.clean_is_prob, self.reduction = clean_is_prob, reduction

    def forward(self, adv_logits: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        return trades_kl(adv_logits, clean, clean_is_prob=self.clean_is_prob, reduction=self.reduction)
