"""The 2-process CPU DDP harness every module and callback test reuses.

Lightning's ``ddp`` strategy relaunches the command line (inside pytest that would be pytest), so
tests use ``ddp_spawn`` with the gloo backend: each rank is a fresh process that unpickles the
trainer's module, datamodule and callbacks, so those must live in importable modules (not inside a
test function). :class:`RankSnapshot` writes each rank's final parameters, buffers and any extra
state to ``<dirpath>/rank<k>.pt`` so the test can compare ranks after the processes are gone.
Every rank closes its gloo process group when the run ends; one left open to interpreter exit can
abort a rank after the test's work is done.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy

from zerosum.cli import close_process_group


def ddp_trainer(tmp_path, *, callbacks=(), find_unused_parameters: bool = False, **kwargs) -> L.Trainer:
    """A 2-process CPU trainer (gloo, spawn) writing under ``tmp_path``, quiet and small."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    defaults = dict(
        accelerator="cpu", devices=2, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
        num_sanity_val_steps=0,
    )
    defaults.update(kwargs)
    strategy = DDPStrategy(start_method="spawn", process_group_backend="gloo",
                           find_unused_parameters=find_unused_parameters)
    return L.Trainer(strategy=strategy, callbacks=[*callbacks, CloseProcessGroup()], **defaults)


class CloseProcessGroup(L.Callback):
    """Closes the process group in the last teardown hook, which a rank reaches only without error."""

    def teardown(self, trainer, pl_module, stage) -> None:
        close_process_group()


class RankSnapshot(L.Callback):
    """Saves ``{"state": module.state_dict(), "extra": extra(trainer, module)}`` per rank at fit end."""

    def __init__(self, dirpath, extra: Optional[Callable] = None):
        self.dirpath = str(dirpath)
        self.extra = extra

    def on_fit_end(self, trainer, pl_module) -> None:
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        extra = self.extra(trainer, pl_module) if self.extra else None
        torch.save({"state": state, "extra": extra}, Path(self.dirpath) / f"rank{trainer.global_rank}.pt")


def load_snapshots(dirpath, world_size: int = 2) -> list[dict]:
    return [torch.load(Path(dirpath) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


def assert_ranks_in_sync(dirpath, world_size: int = 2, atol: float = 0.0) -> list[dict]:
    """Every floating tensor of every rank equals rank 0's (to ``atol``); returns the snapshots."""
    snaps = load_snapshots(dirpath, world_size)
    ref = snaps[0]["state"]
    assert ref, "rank 0 saved an empty state dict"
    for r, snap in enumerate(snaps[1:], start=1):
        assert snap["state"].keys() == ref.keys()
        for k, v in ref.items():
            w = snap["state"][k]
            if v.is_floating_point():
                assert torch.allclose(v, w, atol=atol, rtol=0), f"rank {r} differs from rank 0 at {k}"
            else:
                assert torch.equal(v, w), f"rank {r} differs from rank 0 at {k}"
    return snaps
