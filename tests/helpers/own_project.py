"""Picklable pieces for the tests that use zerosum from an own project (examples/own_project.py):
what each DDP rank reports about the representation callbacks."""

from __future__ import annotations

from zerosum.callbacks import KNNAccuracy, OnlineLinearProbe


def callback_state(trainer, pl_module) -> dict:
    """The kNN monitor's bank sizes, the online probe's weights and the logged metrics of one rank."""
    out = {"metrics": {k: float(v) for k, v in trainer.callback_metrics.items()}}
    for cb in trainer.callbacks:
        if isinstance(cb, KNNAccuracy):
            out["bank_size"], out["local_rows"] = cb.last_bank_size, cb.last_local_rows
        if isinstance(cb, OnlineLinearProbe) and cb.linear is not None:
            out["probe"] = [p.detach().cpu().clone() for p in cb.linear.parameters()]
    return out
