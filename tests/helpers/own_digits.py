"""A user's own project for the active-learning tests: an own LightningDataModule (digits in a
``TensorDataset``, seeded ``random_split``, plain loaders) and an own LightningModule (``x, y = batch``)."""

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, random_split


class DigitsTensors(L.LightningDataModule):
    """What a user writes: tensors, a seeded random_split, plain loaders; no zerosum attributes."""

    def __init__(self, batch_size: int = 32):
        super().__init__()
        from sklearn.datasets import load_digits

        d = load_digits()
        self.x = torch.tensor(d.data, dtype=torch.float32) / 16.0
        self.y = torch.tensor(d.target)
        self.batch_size = batch_size

    def setup(self, stage=None):
        full = TensorDataset(self.x, self.y)
        self.train_ds, self.val_ds, self.test_ds = random_split(full, [1200, 197, 400],
                                                                generator=torch.Generator().manual_seed(0))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=256)

    def test_dataloader(self):
        return DataLoader(self.test_ds, batch_size=256)


class PlainMLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch  # a plain (x, y) batch: the pool must not add anything to it
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)
