"""Trainer overhead: one training epoch of ``Classifier`` under Lightning vs. a plain PyTorch loop.

Same model initialisation, data, batch size and optimizer; both are warmed up by one epoch first and
the fastest of ``--repeats`` epochs is compared, over two interleaved (plain, Lightning) rounds so
that load from other processes hits both alike. Goal (foundation issue): ratio <= 1.10.

    python benchmarks/overhead.py [--samples 8192] [--batch-size 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from torch.nn import functional as F

from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import Classifier


class EpochTimer(L.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.times.append(time.perf_counter() - self._start)


def make(args):
    dm = SyntheticDataModule(num_train=args.samples, num_test=64, num_classes=10, image_size=32, channels=3,
                             batch_size=args.batch_size, val_size=0.0, augment=False)
    dm.setup()
    torch.manual_seed(0)
    model = Classifier(num_classes=10, in_channels=3, net="small_cnn", net_args={"width": 16})
    return dm, model


def lightning_epochs(args) -> list[float]:
    dm, model = make(args)
    timer = EpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=args.repeats + 1, limit_val_batches=0,
                        num_sanity_val_steps=0, enable_checkpointing=False, logger=False,
                        enable_progress_bar=args.progress_bar, enable_model_summary=False, callbacks=[timer])
    trainer.fit(model, train_dataloaders=dm.train_dataloader())
    return timer.times[1:]


def plain_epochs(args) -> list[float]:
    dm, model = make(args)
    optimizer = torch.optim.Adam(model.parameters())
    loader = dm.train_dataloader()
    times = []
    model.train()
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        for x, y, _ in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times[1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--progress-bar", action="store_true", help="keep Lightning's progress bar on")
    args = parser.parse_args()
    plain, lightning = [], []
    for _ in range(2):
        plain += plain_epochs(args)
        lightning += lightning_epochs(args)
    plain, lightning = min(plain), min(lightning)
    print(f"plain loop:  {plain:.3f} s/epoch")
    print(f"Lightning:   {lightning:.3f} s/epoch")
    print(f"ratio Lightning/plain = {lightning / plain:.3f}  (goal <= 1.10)")


if __name__ == "__main__":
    main()
