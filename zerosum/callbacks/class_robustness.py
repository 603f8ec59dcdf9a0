"""Logs per-class natural, boundary and robust error (PGD) at every validation and prints them at test.

Works with any LightningModule whose ``forward`` maps [0, 1] pixels to logits (CAAT, TRADES, PGD-AT,
or the supervised :class:`~zerosum.modules.Classifier` on ``normalize: false`` data). The attack needs
gradients: configure ``Trainer(inference_mode=False)`` (the attack itself also leaves inference mode).
"""

from __future__ import annotations

from typing import Any, Optional

import lightning as L
import torch

from zerosum.attacks import pgd
from zerosum.metrics import ClassRobustnessErrors
from zerosum.metrics.class_robustness import KINDS


class ClassRobustness(L.Callback):
    """PGD-``steps`` (L-inf ``eps``, uniform random start) on validation and test batches.

    Logs ``{stage}/{natural,boundary,robust}_err_{avg,worst}`` and, per class,
    ``{stage}/robust_err/class{c}`` etc.; prints a per-class table after the test.

    Args:
        eps: radius of the evaluation attack (paper: 8/255).
        step_size: its step (paper: 2/255).
        steps: its steps (paper: 20).
        random_start: as :func:`zerosum.attacks.pgd` ("uniform" or None).
        max_batches: attack at most this many batches per validation (None: all); test uses all.
        per_class_logs: also log every class's errors (not only average and worst).
        splits: which evaluation loops to attack ("val", "test" or both).
    """

    def __init__(self, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 20,
                 random_start: Optional[str] = "uniform", max_batches: Optional[int] = None,
                 per_class_logs: bool = True, splits: tuple[str, ...] = ("val", "test")):
        if eps < 0 or step_size < 0 or steps < 0:
            raise ValueError(f"eps: {eps}, step_size: {step_size}, steps: {steps}; allowed: all >= 0")
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"max_batches: {max_batches}; allowed: null (all) or an integer >= 1")
        bad = [s for s in splits if s not in ("val", "test")]
        if bad:
            raise ValueError(f"splits: {list(splits)}; allowed: a subset of val, test")
        self.eps, self.step_size, self.steps, self.random_start = eps, step_size, steps, random_start
        self.max_batches, self.per_class_logs, self.splits = max_batches, per_class_logs, tuple(splits)
        self.metric: Optional[ClassRobustnessErrors] = None
        self.last: dict[str, dict[str, torch.Tensor]] = {}

    def _num_classes(self, trainer, pl_module) -> int:
        for owner in (pl_module.hparams, pl_module, trainer.datamodule):
            n = owner.get("num_classes") if isinstance(owner, dict) else getattr(owner, "num_classes", None)
            if n:
                return int(n)
        raise ValueError("ClassRobustness: cannot find num_classes on the model (hparams) or the datamodule")

    def _reset(self, trainer, pl_module) -> None:
        self.metric = ClassRobustnessErrors(self._num_classes(trainer, pl_module)).to(pl_module.device)

    def _update(self, pl_module, batch) -> None:
        x, y = batch[0], batch[1]
        x_adv = pgd(pl_module, x, y, eps=self.eps, step_size=self.step_size, steps=self.steps,
                    random_start=self.random_start)
        with torch.no_grad():
            clean_pred = pl_module(x).argmax(dim=1)
            adv_pred = pl_module(x_adv).argmax(dim=1)
        self.metric.update(clean_pred, adv_pred, y)

    def _log(self, pl_module, stage: str) -> dict[str, torch.Tensor]:
        values = self.metric.compute()  # synchronised across ranks by torchmetrics
        for kind in KINDS:
            for agg in ("avg", "worst"):
                pl_module.log(f"{stage}/{kind}_err_{agg}", values[f"{kind}_{agg}"].float(), rank_zero_only=True)
            if self.per_class_logs:
                for c, v in enumerate(values[kind].tolist()):
                    pl_module.log(f"{stage}/{kind}_err/class{c}", float(v), rank_zero_only=True)
        self.last[stage] = {k: v.detach().cpu() for k, v in values.items()}
        return values

    # ---- validation -------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if "val" in self.splits:
            self._reset(trainer, pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs: Any, batch, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if "val" not in self.splits or trainer.sanity_checking or (
                self.max_batches is not None and batch_idx >= self.max_batches):
            return
        self._update(pl_module, batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if "val" in self.splits and not trainer.sanity_checking:  # every rank computes: the reduction is collective
            self._log(pl_module, "val")

    # ---- test ---------------------------------------------------------------------------------
    def on_test_epoch_start(self, trainer, pl_module) -> None:
        if "test" in self.splits:
            self._reset(trainer, pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs: Any, batch, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        if "test" in self.splits:
            self._update(pl_module, batch)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        if "test" not in self.splits:
            return
        values = self._log(pl_module, "test")
        if trainer.is_global_zero:
            print(format_table(values, f"PGD-{self.steps} eps={self.eps:.4f}"))


def format_table(values: dict[str, torch.Tensor], title: str = "") -> str:
    """A per-class table (errors in %) with average and worst class."""
    n = len(values["natural"])
    lines = [f"Per-class errors (%) {title}".rstrip(), f"{'class':>6} " + " ".join(f"{k:>9}" for k in KINDS)]
    for c in range(n):
        lines.append(f"{c:>6} " + " ".join(f"{100 * float(values[k][c]):9.2f}" for k in KINDS))
    for agg in ("avg", "worst"):
        lines.append(f"{agg:>6} " + " ".join(f"{100 * float(values[f'{k}_{agg}']):9.2f}" for k in KINDS))
    return "\n".join(lines)
