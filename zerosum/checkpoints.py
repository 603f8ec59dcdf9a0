"""Checkpoint files as the command line sees them: read with a clear error, find the last one of a
run, and tell whether a ``ModelCheckpoint`` leaves a resumable file behind every epoch.

A run folder is ``<logger root>/version_N/`` holding ``config.yaml``, the TensorBoard events and
``checkpoints/`` (Lightning's layout); :func:`run_folder_of` maps a checkpoint back to its run so that
resuming, testing or predicting from it writes next to that run instead of into a new folder.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

#: ``--ckpt_path`` values Lightning resolves itself
KEYWORDS = ("last", "best", "hpc")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (missing, unreadable, of another model)."""


class MissingCheckpoint(CheckpointError, FileNotFoundError):
    """A checkpoint path where there is no file."""


def rebuild_hint(path: str) -> str:
    """How to get a usable checkpoint again, given where ``path`` lies."""
    run = run_folder_of(path)
    if run is not None and (run / "config.yaml").is_file():
        return (f"rebuild it with `zerosum fit --config {run / 'config.yaml'}` (or resume from another file in "
                f"{run / 'checkpoints'})")
    return "rebuild it by rerunning the fit that wrote it (or pass another checkpoint)"


def read_checkpoint(path: str, option: str = "ckpt_path") -> dict[str, Any]:
    """``torch.load`` on the CPU; a missing, empty, truncated or foreign file raises
    :class:`CheckpointError` naming the option, the file and how to rebuild it."""
    if not os.path.exists(path):
        raise MissingCheckpoint(f"{option}: no such file {path!r}; allowed: an existing .ckpt file, or 'last' "
                              "(the newest last.ckpt of this config's runs)")
    if os.path.isdir(path):
        raise CheckpointError(f"{option}: {path!r} is a folder; allowed: a .ckpt file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # EOFError, RuntimeError (zip archive), UnpicklingError, ...
        size = os.path.getsize(path)
        reason = (str(err).splitlines() or [""])[0].split(". ")[0][:100]
        what = "is empty" if size == 0 else f"is unreadable ({type(err).__name__}: {reason})"
        raise CheckpointError(f"{option}: {path!r} {what}: truncated (a kill during a write?) or not a checkpoint; "
                              f"allowed: a complete .ckpt file; {rebuild_hint(path)}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{option}: {path!r} is not a Lightning checkpoint (no state_dict); "
                              f"allowed: a .ckpt file written by a zerosum/Lightning fit")
    return ckpt


def run_folder_of(path: str) -> Optional[Path]:
    """The run folder of a checkpoint at ``<run>/checkpoints/<file>.ckpt`` (else None)."""
    p = Path(path).resolve()
    return p.parent.parent if p.parent.name == "checkpoints" else None


def last_checkpoints(folders: Iterable[str]) -> list[str]:
    """``last*.ckpt`` files in ``folders`` (globs allowed), newest first."""
    found = set()
    for folder in folders:
        for pattern in ("last.ckpt", "last-v*.ckpt"):
            found.update(glob.glob(os.path.join(folder, pattern)))
    return sorted(found, key=os.path.getmtime, reverse=True)


def writes_last_every_epoch(callback: ModelCheckpoint) -> bool:
    """Whether ``callback`` leaves a ``last.ckpt`` at every epoch end, i.e. a killed run loses at most one
    epoch. ``save_top_k: 0`` does not: Lightning then writes ``last.ckpt`` only when fit ends."""
    return (bool(callback.save_last) and callback.save_top_k != 0 and callback.every_n_epochs == 1
            and not callback._every_n_train_steps and callback._train_time_interval is None)


def describe(callback: ModelCheckpoint) -> str:
    """``ModelCheckpoint(save_top_k=0, save_last=True)``: the settings that decide resumability."""
    return (f"ModelCheckpoint(save_top_k={callback.save_top_k}, save_last={callback.save_last!r}, "
            f"every_n_epochs={callback.every_n_epochs})")
