"""``zerosum predict`` leaves a file in the run folder: for a classifier ``predictions.csv`` (one row per
sample: predicted label, class probabilities), for an encoder ``features.pt`` (the representations)."""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from zerosum.atomic import atomic_write
from zerosum.parallel import gather_rows


class PredictionWriter(BasePredictionWriter):
    """Writes what ``predict_step`` returns as dicts of per-sample tensors with an ``index``:

    - with ``label`` and ``probabilities`` (:class:`zerosum.modules.evaluation.LogitsEvaluation`):
      ``predictions.csv`` with ``index`` (the sample's position in the predicted split), ``label`` (the
      predicted class), ``target`` (the true class, where the batch has one) and ``prob_<c>`` per class;
    - with ``features`` (e.g. :class:`zerosum.modules.ADIOS`): ``features.pt``, ``{"index", "features"}``.

    Other outputs are left alone. Rows are sorted by index; under DDP every rank's rows are gathered
    (duplicates from sampler padding dropped) and rank 0 writes, atomically.

    Args:
        filename: name of the CSV file inside the trainer's ``log_dir`` (or ``output_dir``).
        features_filename: name of the features file.
        output_dir: folder to write to instead of the trainer's ``log_dir``.
    """

    def __init__(self, filename: str = "predictions.csv", features_filename: str = "features.pt",
                 output_dir: Optional[str] = None):
        super().__init__(write_interval="batch")
        self.filename, self.features_filename, self.output_dir = filename, features_filename, output_dir
        self._rows: list[dict[str, torch.Tensor]] = []
        self.path: Optional[str] = None

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []

    def write_on_batch_end(self, trainer, pl_module, prediction: Any, batch_indices, batch, batch_idx: int,
                           dataloader_idx: int) -> None:
        if isinstance(prediction, dict) and "index" in prediction and (
                "features" in prediction or ("label" in prediction and "probabilities" in prediction)):
            self._rows.append({k: v.detach().cpu() for k, v in prediction.items() if isinstance(v, torch.Tensor)})

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        has_rows = torch.tensor(float(bool(self._rows)))
        if trainer.world_size > 1:
            has_rows = trainer.strategy.reduce(has_rows.to(trainer.strategy.root_device), reduce_op="max").cpu()
        if not has_rows.item():
            return
        folder = self.output_dir or trainer.log_dir or trainer.default_root_dir  # log_dir: every rank asks
        keys = [k for k in ("index", "label", "target", "probabilities", "features")
                if all(k in r for r in self._rows)]
        local = [torch.cat([r[k] for r in self._rows]) for k in keys]
        gathered = dict(zip(keys, gather_rows(trainer, *local)))
        if not trainer.is_global_zero:
            return
        order = torch.argsort(gathered["index"], stable=True)
        index = gathered["index"][order]
        keep = torch.ones_like(index, dtype=torch.bool)
        keep[1:] = index[1:] != index[:-1]  # DistributedSampler pads with repeated samples
        rows = {k: v[order][keep] for k, v in gathered.items()}
        os.makedirs(folder, exist_ok=True)
        if "features" in rows:
            self.path = os.path.join(folder, self.features_filename)
            buf = io.BytesIO()
            torch.save({"index": rows["index"], "features": rows["features"]}, buf)
            atomic_write(self.path, buf.getvalue())
        if "probabilities" in rows:
            self._write_csv(os.path.join(folder, self.filename), rows)
        rank_zero_info(f"zerosum: {len(rows['index'])} predictions written to {self.path}")

    def _write_csv(self, path: str, rows: dict[str, torch.Tensor]) -> None:
        probs = rows["probabilities"]
        buf = io.StringIO()
        writer = csv.writer(buf)
        columns = [k for k in ("index", "label", "target") if k in rows]
        writer.writerow(columns + [f"prob_{c}" for c in range(probs.shape[1])])
        for i in range(len(rows["index"])):
            writer.writerow([int(rows[k][i]) for k in columns] + [f"{p:.6g}" for p in probs[i].tolist()])
        self.path = path
        atomic_write(path, buf.getvalue())
