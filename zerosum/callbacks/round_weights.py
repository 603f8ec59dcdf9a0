"""Which weights an active-learning round ends with: best on validation, and valid BatchNorm statistics.

- :class:`BestOnValidation`: the weights with the highest validation accuracy seen during a round
  (VAAL's official ``solver.py`` validates every 1000 iterations and tests the best task model; baal
  does the same), restored before the round is evaluated and the pool is scored.
- :func:`recalibrate_batchnorm`: re-estimates BatchNorm running statistics as exact averages over a
  loader (train-mode BatchNorm, everything else in eval mode), for weights whose running averages
  still remember the initialisation (very short rounds).
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn

from zerosum.inference import eval_mode, outside_inference_mode


class BestOnValidation:
    """The best validation accuracy of the current round and a CPU copy of the weights that had it.

    Ties keep the earlier weights (a strict ``>``, as VAAL's official code). ``networks`` (top-level
    child names) restricts which weights are copied and restored; ``None`` means every entry of the
    module's state dict except the names in ``skip``.
    """

    def __init__(self, networks: Optional[Iterable[str]] = None):
        self.networks = tuple(networks) if networks is not None else None
        self.reset(-1)

    def reset(self, round_index: int) -> None:
        self.round, self.acc, self.step, self.weights = int(round_index), float("-inf"), -1, None

    def _selected(self, name: str, skip: tuple[str, ...]) -> bool:
        top = name.split(".")[0]
        return top in self.networks if self.networks is not None else top not in skip

    def check_names(self, module: nn.Module) -> None:
        if self.networks is None:
            return
        top = {k.split(".")[0] for k in module.state_dict()}
        unknown = [n for n in self.networks if n not in top]
        if unknown:
            raise ValueError(f"best_val_networks: {unknown} are not top-level children of {type(module).__name__}; "
                             f"allowed: {sorted(top)}")

    def update(self, round_index: int, acc: float, step: int, module: nn.Module, skip: tuple[str, ...] = ()) -> bool:
        """Record ``acc`` at ``step`` of round ``round_index``; copy the weights if it is the best so far."""
        if round_index != self.round:
            self.reset(round_index)
        if acc <= self.acc:
            return False
        self.acc, self.step = float(acc), int(step)
        self.weights = {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if self._selected(k, skip)}
        return True

    def restore(self, module: nn.Module) -> None:
        if self.weights is None:
            return
        with torch.no_grad():
            _, unexpected = module.load_state_dict(self.weights, strict=False)
        if unexpected:
            raise RuntimeError(f"best-on-validation weights do not fit {type(module).__name__}: {unexpected}")

    def state_dict(self) -> dict:
        return {"round": self.round, "acc": self.acc, "step": self.step, "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        self.round, self.acc, self.step = int(state["round"]), float(state["acc"]), int(state["step"])
        self.weights = state["weights"]


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recalibrate_batchnorm(module: nn.Module, loader) -> int:
    """Replace every BatchNorm layer's running statistics by their exact average over ``loader``
    (batches ``(x, ...)``, forwarded as ``module(x)`` with only BatchNorm in train mode); returns the
    number of layers re-estimated. Every rank runs the whole loader, so no communication is needed."""
    layers = batchnorm_layers(module)
    if not layers:
        return 0
    momenta = [m.momentum for m in layers]
    device = next(module.parameters()).device
    with outside_inference_mode(grad=False), eval_mode(module):
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average = the exact mean over the batches
            m.train()
        for batch in loader:
            module(batch[0].to(device))
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    return len(layers)
