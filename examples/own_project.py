"""zerosum inside your own Lightning project.

Your own LightningDataModule (scikit-learn's digits in TensorDatasets, plain ``(x, y)`` batches),
your own networks and your own LightningModule, with zerosum's parts plugged in:

1. entropy active learning: ``ActivePoolDataModule`` around your datamodule and the ``ActiveLearning``
   callback, training your module unchanged;
2. ADIOS with your own encoder, watched by ``OnlineLinearProbe`` and ``KNNAccuracy``;
3. VAAL with your own task network.

Run it with ``python examples/own_project.py`` (``--quick`` for a smoke run).
"""

import argparse

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset, random_split

from zerosum.callbacks import ActiveLearning, KNNAccuracy, OnlineLinearProbe
from zerosum.datamodules import ActivePoolDataModule
from zerosum.modules import ADIOS, VAAL
from zerosum.query import EntropyStrategy, VAALQuery
from zerosum.transforms import SimCLRTransform


# ---- your project: data, networks, module --------------------------------------------------------
class Views(Dataset):
    """``(transform(x), y)``: a list of augmented views per image, for self-supervised training."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        x, y = self.dataset[i]
        return self.transform(x), y


class DigitsData(L.LightningDataModule):
    """The 1797 digits (1 x 8 x 8, in [0, 1]) split 70/10/20; batches are plain ``(x, y)``, or
    ``([view_1, view_2], y)`` for training when ``views`` is a multi-view transform."""

    num_classes = 10

    def __init__(self, batch_size=64, views=None):
        super().__init__()
        self.batch_size, self.views = batch_size, views

    def setup(self, stage=None):
        x, y = load_digits(return_X_y=True)
        data = TensorDataset(torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16, torch.tensor(y))
        split = random_split(data, [0.7, 0.1, 0.2], generator=torch.Generator().manual_seed(0))
        self.train_set, self.val_set, self.test_set = split

    def train_dataloader(self):
        data = Views(self.train_set, self.views) if self.views else self.train_set
        return DataLoader(data, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def bank_dataloader(self):  # the training images without views: KNNAccuracy's bank
        return DataLoader(self.train_set, batch_size=256)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=256)


def conv_trunk(width=32):
    """Two conv blocks and global pooling: ``(B, 1, 8, 8) -> (B, 2 * width)``."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


class ConvNet(nn.Module):
    """A classifier with a linear ``fc`` (zerosum reads its features at the input of ``fc``)."""

    def __init__(self, num_classes=10, width=32):
        super().__init__()
        self.trunk, self.fc = conv_trunk(width), nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.trunk(x))


class LitClassifier(L.LightningModule):
    """A plain LightningModule: ``x, y = batch``, cross-entropy, Adam."""

    def __init__(self, lr=3e-3):
        super().__init__()
        self.net, self.lr = ConvNet(), lr

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/acc", (self(x).argmax(1) == y).float().mean())

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def trainer(**kwargs):
    """Logs to lightning_logs/version_<n>/ (a new folder per run: rounds.csv, learning_curve.png, ...)."""
    return L.Trainer(accelerator="cpu", devices=1, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kwargs)


# ---- zerosum's parts plugged in ------------------------------------------------------------------
def entropy_active_learning(rounds=4, steps_per_round=150, budget=50):
    """Your module and datamodule, unchanged, in zerosum's active-learning loop."""
    pool = ActivePoolDataModule(DigitsData(batch_size=32), initial_labeled=50)
    loop = ActiveLearning(strategy=EntropyStrategy(), rounds=rounds, steps_per_round=steps_per_round,
                          budget=budget, select_weights="best_val")
    trainer(callbacks=[loop], num_sanity_val_steps=0).fit(LitClassifier(), pool)
    return loop


def adios_with_own_encoder(epochs=5, batches=1.0):
    """ADIOS's SimCLR game with your encoder (``forward`` is its representation: it has no head)."""
    model = ADIOS(net=conv_trunk(width=16), num_classes=10, in_channels=1, image_size=8, objective="simclr",
                  objective_args={"proj_hidden_dim": 128, "proj_output_dim": 64}, num_masks=3,
                  mask_net_args={"base_width": 8, "num_blocks": 2}, warmup_epochs=1)
    views = SimCLRTransform(size=8, crop_scale=(0.5, 1.0), jitter_p=0.0, gray_p=0.0, flip_p=0.0)
    fit = trainer(max_epochs=epochs, limit_train_batches=batches, callbacks=[OnlineLinearProbe(), KNNAccuracy(k=20)])
    fit.fit(model, DigitsData(views=views))
    return {k: float(v) for k, v in fit.callback_metrics.items() if k in ("probe/val_acc", "knn/val_acc")}


def vaal_with_own_task_net(rounds=4, steps_per_round=150, budget=50):
    """VAAL's three-player game with your classifier as the task model."""
    model = VAAL(net=ConvNet(), num_classes=10, in_channels=1, image_size=8, latent_dim=16,
                 vae_base_width=16, vae_num_blocks=2, disc_hidden_dim=64,
                 task_optimizer=lambda params: torch.optim.Adam(params, lr=3e-3))
    # batches of 64: VAAL draws fresh samples for each of its updates (2 draws of 32 per step)
    pool = ActivePoolDataModule(DigitsData(batch_size=64), initial_labeled=50, unlabeled_stream=True)
    loop = ActiveLearning(strategy=VAALQuery(), rounds=rounds, steps_per_round=steps_per_round,
                          budget=budget, select_weights="best_val")
    trainer(callbacks=[loop], num_sanity_val_steps=0).fit(model, pool)
    return loop


def main(quick=False):
    L.seed_everything(0)
    short = dict(rounds=2, steps_per_round=2, budget=20) if quick else {}
    for name, loop in (("entropy", entropy_active_learning(**short)), ("vaal", vaal_with_own_task_net(**short))):
        for row in loop.history:
            print(f"{name}: round {row['round']}: {row['labeled']} labels, test accuracy {row['test_acc']:.3f}")
    for key, value in sorted(adios_with_own_encoder(**(dict(epochs=1, batches=3) if quick else {})).items()):
        print(f"adios: {key} = {value:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of each, to check that it runs")
    main(parser.parse_args().quick)
