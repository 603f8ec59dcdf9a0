"""LARS: SGD with layer-wise adaptive rate scaling (You et al. 2017, Eq. 6-7).

Our own small implementation: lightning-bolts (which shipped one) does not work with Lightning 2.x.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch.optim import Optimizer


class LARS(Optimizer):
    """For each parameter tensor ``w`` with gradient ``g``:

        g <- g + wd * w
        trust = eta * ||w|| / (||g_raw|| + wd * ||w||)      (1 if either norm is 0)
        v <- momentum * v + trust * g;   w <- w - lr * v

    With ``exclude_bias_and_norm`` (default, as SimCLR/BYOL do) one-dimensional tensors (biases,
    norm scales) get neither weight decay nor adaptation, i.e. plain momentum SGD.
    ``clip_lr`` is the "clipping" variant of the ADIOS/solo-learn code: the trust ratio is divided by
    ``lr`` and capped at 1, so a layer's step size is ``min(eta * ||w|| / (...), lr)``.
    """

    def __init__(self, params: Iterable, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.02, exclude_bias_and_norm: bool = True, clip_lr: bool = False, nesterov: bool = False):
        if lr < 0:
            raise ValueError(f"LARS: lr must be >= 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"LARS: momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0 or eta <= 0:
            raise ValueError(f"LARS: need weight_decay >= 0 and eta > 0, got {weight_decay} and {eta}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                        exclude_bias_and_norm=exclude_bias_and_norm, clip_lr=clip_lr, nesterov=nesterov)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                adapt = not (group["exclude_bias_and_norm"] and p.ndim <= 1)
                if adapt:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    wd = group["weight_decay"]
                    g = g.add(p, alpha=wd) if wd else g
                    trust = torch.where((w_norm > 0) & (g_norm > 0),
                                        group["eta"] * w_norm / (g_norm + wd * w_norm), torch.ones_like(w_norm))
                    if group["clip_lr"]:  # solo-learn / ADIOS: step lr * min(trust / lr, 1) = min(trust, lr)
                        trust = (trust / group["lr"]).clamp(max=1.0) if group["lr"] > 0 else trust
                    g = g * trust
                if group["momentum"]:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.clone()
                    else:
                        buf.mul_(group["momentum"]).add_(g)
                    g = g.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                p.add_(g, alpha=-group["lr"])
        return loss
