"""Per-step training values, logged on the batches the Trainer hands to its loggers.

Lightning's ``self.log`` costs about half a millisecond a key whatever the value (each call moves
the stored result's state to the value's device). That is a large share of an iteration when the
players are small: VAAL's three updates on a GPU, for instance. Step values reach the loggers only
every ``log_every_n_steps`` batches, so :func:`log_step` logs them on those batches and on the last
batch of an epoch, where progress bars and ``trainer.callback_metrics`` read them. The values the
loggers record are the same; the progress bar shows them at that cadence.
"""

from __future__ import annotations

from typing import Mapping

import lightning as L
import torch


def log_step(module: L.LightningModule, metrics: Mapping[str, torch.Tensor], prog_bar: bool = False) -> None:
    """``module.log_dict(metrics, on_step=True, on_epoch=False)`` when the Trainer will log this batch."""
    trainer = module._trainer
    if trainer is None:  # a step called outside a Trainer
        return
    connector = getattr(trainer, "_logger_connector", None)
    if getattr(connector, "should_update_logs", True) or trainer.is_last_batch:
        module.log_dict({k: v.detach() for k, v in metrics.items()}, prog_bar=prog_bar, on_step=True, on_epoch=False)
