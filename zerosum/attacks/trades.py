"""The TRADES adversary (Zhang et al. 2019, Eq. 5's inner maximisation), shared by the TRADES module
and CAAT's adversary (Zhou et al. 2023, Eq. 10):

    x' = argmax_{x' in B_inf(x, eps)} KL(f(x) || f(x'))

by PGD on the KL from ``x + init_std N(0, I)``, the clean prediction fixed (eval mode, no gradient).
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zerosum.attacks.pgd import full_float, full_precision, pgd
from zerosum.inference import eval_mode
from zerosum.losses.trades_kl import TradesKL


def clean_probabilities(net: nn.Module, x: Tensor) -> Tensor:
    """``softmax(net(x))`` in eval mode without gradients and in full precision (the attack's fixed
    reference)."""
    with eval_mode(net), torch.no_grad(), full_precision(x.device):
        return F.softmax(net(full_float(x)), dim=1)


def trades_attack(net: nn.Module, x: Tensor, *, eps: Union[float, Tensor], step_size: Union[float, Tensor],
                  steps: int, init_std: float = 0.001) -> Tensor:
    """The TRADES adversarial example of ``x`` (``eps`` / ``step_size`` may be per-sample (B,) tensors)."""
    return pgd(net, x, clean_probabilities(net, x), eps=eps, step_size=step_size, steps=steps,
               loss_fn=TradesKL(clean_is_prob=True), random_start="normal", init_std=init_std)
