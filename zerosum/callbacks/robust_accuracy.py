"""PGD (robust) accuracy of any classifier, measured every ``every_n_epochs`` on the val or test split.

The attack runs on each evaluation batch of the rank that sees it (so it is distributed like
validation itself); correct / total counts are summed over ranks at the end of the epoch. Lightning
evaluates under ``torch.inference_mode``; :func:`zerosum.attacks.pgd` leaves it by itself, so no
``Trainer(inference_mode=False)`` is needed.

The classifier must take [0, 1] pixels (``normalize: false`` on the datamodule, normalisation inside
the model), otherwise ``eps`` and the pixel box mean nothing; the callback refuses a normalising
datamodule with a clear error.
"""

from __future__ import annotations

from typing import Optional, Union

import lightning as L
import torch

from zerosum.attacks import PGD

SPLITS = ("val", "test")


class RobustAccuracy(L.Callback):
    """Logs ``<split>/robust_acc@<norm>`` (and ``..._clean`` for the same samples).

    Args:
        norm: threat model of the PGD attack, "linf" or "l2" (see :class:`zerosum.attacks.PGD`).
        eps: its radius.
        steps: its steps.
        step_size: its step (default ``2.5 * eps / steps``).
        random_start: its random start (True, False or a start name).
        every_n_epochs: attack the val split at the end of every k-th epoch.
        splits: which evaluation loops to attack ("val", "test" or both).
        max_batches: attack at most this many batches per rank and epoch (None: all).
    """

    def __init__(self, norm: str = "linf", eps: float = 8 / 255, steps: int = 10, step_size: Optional[float] = None,
                 random_start: Union[bool, str] = True, every_n_epochs: int = 1,
                 splits: tuple[str, ...] = ("val", "test"), max_batches: Optional[int] = None):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs: {every_n_epochs}; allowed: an integer >= 1")
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise ValueError(f"splits: {list(splits)}; allowed: a subset of {', '.join(SPLITS)}")
        self.attack = PGD(norm, eps, steps, step_size, random_start)
        self.every_n_epochs, self.splits, self.max_batches = every_n_epochs, tuple(splits), max_batches
        self.name = f"robust_acc@{norm}"
        self._counts = torch.zeros(3)  # correct robust, correct clean, total
        #: one dict per measurement: split, epoch, robust, clean, total (samples over all ranks)
        self.history: list[dict] = []

    # ---- which batches ----------------------------------------------------------------------------
    def _active(self, trainer: L.Trainer, split: str, batch_idx: int) -> bool:
        if split not in self.splits or trainer.sanity_checking:
            return False
        if split == "val" and (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return False
        return self.max_batches is None or batch_idx < self.max_batches

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if getattr(datamodule, "normalize", False):
            raise ValueError(
                "data: normalize is true, but RobustAccuracy attacks in [0, 1] pixel space; allowed: the datamodule "
                "with normalize: false, normalising inside the model (zerosum.nets.Normalized, AdversarialTraining's "
                "data_mean and data_std)"
            )

    # ---- per batch ----------------------------------------------------------------------------------
    def _start(self) -> None:
        self._counts = torch.zeros(3)

    def _batch(self, trainer, pl_module, batch, batch_idx: int, split: str) -> None:
        if not self._active(trainer, split, batch_idx):
            return
        x, y = batch[0], batch[1]
        x_adv = self.attack(pl_module, x, y)
        with torch.no_grad():
            robust = (pl_module(x_adv).argmax(1) == y).sum()
            clean = (pl_module(x).argmax(1) == y).sum()
        self._counts += torch.stack([robust.cpu(), clean.cpu(), torch.tensor(len(y))]).float()

    def _end(self, trainer, pl_module, split: str) -> None:
        if split not in self.splits or trainer.sanity_checking:
            return
        if split == "val" and (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        counts = trainer.strategy.reduce(self._counts.to(pl_module.device), reduce_op="sum")
        if counts[2] > 0:
            robust, clean = (counts[0] / counts[2]).item(), (counts[1] / counts[2]).item()
            self.history.append({"split": split, "epoch": trainer.current_epoch, "robust": robust, "clean": clean,
                                 "total": int(counts[2])})
            pl_module.log(f"{split}/{self.name}", robust)
            pl_module.log(f"{split}/{self.name}_clean", clean)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch(trainer, pl_module, batch, batch_idx, "val")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._end(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch(trainer, pl_module, batch, batch_idx, "test")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._end(trainer, pl_module, "test")
