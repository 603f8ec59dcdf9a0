"""Weighted k-nearest-neighbour accuracy of a representation (Wu et al. 2018, Eq. 5-6; the kNN
monitor of self-supervised learning): validation features vote with the labels of their k most
cosine-similar training features, weighted by ``exp(sim / T)``."""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from torch.nn import functional as F

from zerosum.callbacks.batch_features import batch_images, step_features


def knn_predict(queries: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
                k: int = 20, temperature: float = 0.07) -> torch.Tensor:
    """Predicted classes of ``queries`` (rows l2-normalised here) from the ``bank``."""
    q, b = F.normalize(queries, dim=1), F.normalize(bank, dim=1)
    sim = q @ b.t()
    k = min(k, b.shape[0])
    top_sim, top_idx = sim.topk(k, dim=1)
    weights = (top_sim / temperature).exp()
    votes = torch.zeros(q.shape[0], num_classes, device=q.device, dtype=weights.dtype)
    votes.scatter_add_(1, bank_labels[top_idx], weights)
    return votes.argmax(1)


class KNNAccuracy(L.Callback):
    """Logs ``knn/val_acc`` after each validation epoch: the bank is the datamodule's
    ``train_set_eval`` (training samples, evaluation transforms; at most ``max_bank`` of them,
    seeded; labels < 0 dropped), the queries the validation split (sharded over DDP ranks; counts
    are summed over ranks).

    Args:
        k / temperature: neighbours and vote temperature (Wu et al.: 200 and 0.07; 20 is the
            common monitor choice).
        max_bank: cap on the bank size (CPU runs).
        every_n_epochs: evaluate only every n-th validation epoch.
    """

    def __init__(self, k: int = 20, temperature: float = 0.07, max_bank: Optional[int] = None,
                 every_n_epochs: int = 1, batch_size: int = 256, seed: int = 0):
        if k < 1 or temperature <= 0:
            raise ValueError(f"KNNAccuracy: need k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
        self.k, self.temperature, self.max_bank = k, temperature, max_bank
        self.every_n_epochs, self.batch_size, self.seed = every_n_epochs, batch_size, seed
        self._feats: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def _active(self, trainer) -> bool:
        return not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._feats, self._labels = [], []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._active(trainer):
            self._feats.append(step_features(pl_module, outputs, batch).float())
            self._labels.append(batch[1].to(self._feats[-1].device))

    @torch.no_grad()
    def bank(self, trainer, pl_module) -> tuple[torch.Tensor, torch.Tensor]:
        dm = trainer.datamodule
        dataset = getattr(dm, "train_set_eval", None)
        if dataset is None:
            raise ValueError("KNNAccuracy needs a datamodule with train_set_eval (a zerosum VisionDataModule)")
        if self.max_bank is not None and self.max_bank < len(dataset):
            keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))[: self.max_bank]
            dataset = torch.utils.data.Subset(dataset, keep.tolist())
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=False)
        feats, labels = [], []
        for batch in loader:
            feats.append(pl_module.features(batch_images(batch).to(pl_module.device)).float())
            labels.append(batch[1].to(pl_module.device))
        feats, labels = torch.cat(feats), torch.cat(labels)
        keep = labels >= 0
        return feats[keep], labels[keep]

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self._active(trainer) or not self._feats:
            return
        bank, bank_labels = self.bank(trainer, pl_module)
        queries, labels = torch.cat(self._feats), torch.cat(self._labels)
        classes = int(getattr(trainer.datamodule, "num_classes", int(bank_labels.max()) + 1))
        keep = labels >= 0
        pred = knn_predict(queries[keep], bank, bank_labels, classes, self.k, self.temperature)
        counts = torch.stack([(pred == labels[keep]).sum().float(), keep.sum().float()])
        counts = trainer.strategy.reduce(counts, reduce_op="sum")
        if counts[1] > 0:
            pl_module.log("knn/val_acc", counts[0] / counts[1], prog_bar=True)
        self._feats, self._labels = [], []
