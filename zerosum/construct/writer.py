"""Writes constructed shards (``shard_00000.pt`` ...) and a JSON manifest.

Each predict batch is one shard (:class:`~zerosum.datamodules.ConstructionData`), computed by
exactly one rank, so each file is written once; files are written to a temporary name and renamed,
so a killed run never leaves a half shard. On start, an existing manifest whose settings differ from
the module's is refused (a resumed run must not mix datasets). At the end, rank 0 writes
``manifest.json`` listing every shard found on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

MANIFEST = "manifest.json"


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.pt"


class ShardWriter(BasePredictionWriter):
    """``out_dir/shard_<k>.pt`` = the dict returned by the construction module for shard ``k``."""

    def __init__(self, out_dir: str):
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)

    def is_done(self, k: int) -> bool:
        return (self.out_dir / shard_name(k)).exists()

    def _settings(self, pl_module) -> dict[str, Any]:
        return pl_module.settings() if hasattr(pl_module, "settings") else {}

    def on_predict_start(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / MANIFEST
        if path.exists():
            old = json.loads(path.read_text()).get("settings")
            new = json.loads(json.dumps(self._settings(pl_module)))
            if old != new:
                raise ValueError(f"{path} was written with other settings ({old}) than this run ({new}); "
                                 "use another out_dir or delete it")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if prediction is None:  # shard already on disk (resumed run)
            return
        final = self.out_dir / shard_name(prediction["shard"])
        tmp = final.with_suffix(f".tmp{trainer.global_rank}")
        torch.save(prediction, tmp)
        os.replace(tmp, final)

    def on_predict_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier()
        if trainer.global_rank == 0:
            self.write_manifest(trainer, pl_module)
        trainer.strategy.barrier()

    def write_manifest(self, trainer, pl_module) -> dict:
        loader = trainer.predict_dataloaders
        loader = loader[0] if isinstance(loader, (list, tuple)) else loader
        shards_ds = loader.dataset
        datamodule = trainer.datamodule
        shards, extra = [], {}
        for k in range(len(shards_ds)):
            if not self.is_done(k):
                continue
            data = torch.load(self.out_dir / shard_name(k), weights_only=False)
            shards.append({"file": shard_name(k), "count": len(data["labels"])})
            for key in ("target_hit", "feature_rel_dist"):
                if key in data:
                    extra.setdefault(key, []).append(data[key].float())
        first = torch.load(self.out_dir / shards[0]["file"], weights_only=False) if shards else None
        manifest = {
            "settings": json.loads(json.dumps(self._settings(pl_module))),
            "num_samples": shards_ds.num_samples,
            "shard_size": shards_ds.shard_size,
            "num_shards": len(shards_ds),
            "complete": len(shards) == len(shards_ds),
            "shards": shards,
            "num_classes": getattr(datamodule, "num_classes", None),
            "image_shape": list(first["images"].shape[1:]) if first is not None else None,
            "dtype": str(first["images"].dtype).replace("torch.", "") if first is not None else None,
            "split": getattr(datamodule, "split", None),
            "stats": {k: float(torch.cat(v).mean()) for k, v in extra.items()},
        }
        (self.out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return manifest
