"""Picklable helpers for the self-supervised (ADIOS) DDP tests."""

from __future__ import annotations


from zerosum.callbacks import OnlineLinearProbe


def optimizer_and_probe_state(trainer, pl_module) -> dict:
    """Each optimizer's momentum buffers (in parameter order) and the online probe's weights."""
    out = {}
    for i, opt in enumerate(trainer.optimizers):
        out[f"opt{i}"] = [opt.state[p]["momentum_buffer"].detach().cpu().clone()
                          for g in opt.param_groups for p in g["params"] if "momentum_buffer" in opt.state[p]]
    for cb in trainer.callbacks:
        if isinstance(cb, OnlineLinearProbe) and cb.linear is not None:
            out["probe"] = [p.detach().cpu().clone() for p in cb.linear.parameters()]
    tau = getattr(pl_module.objective, "tau", None) if hasattr(pl_module, "objective") else None
    out["tau"] = tau
    return out
