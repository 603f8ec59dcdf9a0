"""Writes constructed shards (``shard_00000.pt`` ...), one checksum record per shard and a manifest.

Each predict batch is one shard (:class:`~zerosum.datamodules.ConstructionData`), computed by exactly
one rank, so each file is written once. Everything is written atomically (:mod:`zerosum.atomic`):
the shard, then its record ``shard_<k>.pt.json`` (size, SHA-256, sample count, settings digest, sums
of the per-sample statistics), and at the end ``manifest.json`` (rank 0). A rerun therefore heals:

- leftovers ``*.tmp<pid>`` of a killed run are removed before anything is written;
- a shard counts as built only if its record is intact and its size and checksum match; a damaged,
  truncated or record-less shard is rebuilt (and said so);
- an unreadable manifest is rewritten at the end; a readable one (or a shard record) written with
  other settings than this run's is refused, so a resumed run never mixes datasets.

The manifest records per-set quality (:data:`zerosum.datamodules.shards.STATS`): the fraction of
targets the attack reached (``target_hit_rate``, D_rand / D_det) and the final inversion loss
(``inversion_loss`` and the relative ``inversion_rel_loss``, D_R / D_NR), which
:class:`~zerosum.datamodules.ConstructedDataModule` checks before training.

Runs without a logger would save LightningCLI's ``config.yaml`` into the current directory; the
writer points such a trainer's ``default_root_dir`` at ``out_dir``, so the config lands next to the
shards (and the reader's rebuild hint can name it).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from zerosum.atomic import atomic_write, remove_stale_tmp, sha256_of
from zerosum.datamodules.shards import (
    MANIFEST,
    MISSING,
    STATS,
    check_shard,
    read_json,
    record_name,
    settings_digest,
    shard_name,
)

__all__ = ["MANIFEST", "ShardWriter", "shard_name"]


class ShardWriter(BasePredictionWriter):
    """``out_dir/shard_<k>.pt`` = the dict returned by the construction module for shard ``k``.

    Args:
        out_dir: folder of the shards, their records, the manifest (and the run's config.yaml).
    """

    def __init__(self, out_dir: str):
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self._digest: str | None = None

    # ---- which shards are built -------------------------------------------------------------------
    def is_done(self, k: int) -> bool:
        """True if shard ``k`` is on disk and intact; a damaged one is deleted (to be rebuilt)."""
        record, why = check_shard(self.out_dir, k, self._digest)
        if record is not None:
            return True
        if why != MISSING:
            warnings.warn(f"{self.out_dir / shard_name(k)} {why}; rebuilding it", stacklevel=2)
            for name in (shard_name(k), record_name(k)):
                (self.out_dir / name).unlink(missing_ok=True)
        return False

    def _settings(self, pl_module) -> dict[str, Any]:
        settings = pl_module.settings() if hasattr(pl_module, "settings") else {}
        return json.loads(json.dumps(settings, default=str))

    # ---- hooks --------------------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        if not trainer.loggers and os.path.abspath(trainer.default_root_dir) == os.getcwd():
            # LightningCLI saves config.yaml to the log dir, which without a logger is default_root_dir
            trainer._default_root_dir = str(self.out_dir)

    def on_predict_start(self, trainer, pl_module) -> None:
        settings = self._settings(pl_module)
        self._digest = settings_digest(settings)
        if trainer.global_rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            removed = remove_stale_tmp(self.out_dir)
            if removed:
                warnings.warn(f"{self.out_dir}: removed {len(removed)} leftover file(s) of a killed run: "
                              f"{', '.join(removed[:5])}{' ...' if len(removed) > 5 else ''}", stacklevel=2)
        trainer.strategy.barrier()  # nobody writes before the leftovers are gone
        path = self.out_dir / MANIFEST
        manifest, why = read_json(path)
        if manifest is None and why != "missing":
            warnings.warn(f"{path} is {why}; it is rewritten at the end of this run (shards are checked "
                          "against their own records)", stacklevel=2)
        elif manifest is not None and manifest.get("settings") != settings:
            raise ValueError(f"out_dir: {path} was written with other settings ({manifest.get('settings')}) than "
                             f"this run ({settings}); allowed: the same settings to resume, or another out_dir")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if prediction is None:  # shard already on disk (resumed run)
            return
        k = prediction["shard"]
        buffer = io.BytesIO()
        torch.save(prediction, buffer)
        data = buffer.getvalue()
        atomic_write(self.out_dir / shard_name(k), data)
        sums = {key: float(prediction[key].double().sum()) for key in STATS if key in prediction}
        record = {"file": shard_name(k), "bytes": len(data), "sha256": sha256_of(data),
                  "count": len(prediction["labels"]), "settings_digest": self._digest, "sums": sums,
                  "image_shape": list(prediction["images"].shape[1:]),
                  "dtype": str(prediction["images"].dtype).replace("torch.", "")}
        atomic_write(self.out_dir / record_name(k), json.dumps(record, indent=1))

    def on_predict_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier()
        if trainer.global_rank == 0:
            self.write_manifest(trainer, pl_module)
        trainer.strategy.barrier()

    def write_manifest(self, trainer, pl_module) -> dict:
        loader = trainer.predict_dataloaders
        loader = loader[0] if isinstance(loader, (list, tuple)) else loader
        shards_ds = loader.dataset
        records = [check_shard(self.out_dir, k, self._digest)[0] for k in range(len(shards_ds))]
        records = [r for r in records if r is not None]
        count = sum(r["count"] for r in records)
        sums = {key: sum(r.get("sums", {}).get(key, 0.0) for r in records) for key in STATS}
        present = [key for key in STATS if any(key in r.get("sums", {}) for r in records)]
        manifest = {
            "settings": self._settings(pl_module),
            "num_samples": shards_ds.num_samples,
            "shard_size": shards_ds.shard_size,
            "num_shards": len(shards_ds),
            "complete": len(records) == len(shards_ds),
            "shards": [{key: r[key] for key in ("file", "count", "bytes", "sha256")} for r in records],
            "num_classes": getattr(trainer.datamodule, "num_classes", None),
            "image_shape": records[0]["image_shape"] if records else None,
            "dtype": records[0]["dtype"] if records else None,
            "split": getattr(trainer.datamodule, "split", None),
            "stats": {STATS[key]: sums[key] / count for key in present} if count else {},
        }
        atomic_write(self.out_dir / MANIFEST, json.dumps(manifest, indent=2))
        return manifest
