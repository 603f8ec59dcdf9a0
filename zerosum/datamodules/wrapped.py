"""Datamodules built on top of another one: an active-learning pool over its training split, a
CAAT scenario made from it, constructed training data evaluated on it, construction shards read
from it.

They all describe the wrapped dataset, so its facts (classes, image shape, normalisation statistics,
batch size) are read through live properties, one way for all of them: the CLI links them into the
model right after ``__init__`` (``zerosum.cli.DATA_LINKS``), before any ``setup``.
"""

from __future__ import annotations

from typing import Optional

import lightning as L


class WrappedDataModule(L.LightningDataModule):
    """Holds the wrapped datamodule as :attr:`data`, reads its facts through, and hands it
    ``prepare_data``, ``setup`` and the evaluation loaders. Subclasses build their own training data
    in ``setup`` after (or before) ``super().setup(stage)``, and override whatever they change.

    Args:
        data: the wrapped datamodule (a :class:`~zerosum.datamodules.VisionDataModule` in zerosum).
    """

    def __init__(self, data: L.LightningDataModule):
        super().__init__()
        self.data = data

    # ---- the wrapped dataset's facts (linked into the model by the CLI) ---------------------
    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def in_channels(self) -> int:
        return self.data.in_channels

    @property
    def image_size(self) -> int:
        return self.data.image_size

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.data.image_shape

    @property
    def mean(self):
        return self.data.mean

    @property
    def std(self):
        return self.data.std

    @property
    def batch_size(self) -> int:
        return self.data.batch_size

    # ---- delegation ---------------------------------------------------------------------------
    def prepare_data(self) -> None:
        self.data.prepare_data()

    def setup(self, stage: Optional[str] = None) -> None:
        self.data.setup(stage)

    def val_dataloader(self):
        return self.data.val_dataloader()

    def test_dataloader(self):
        return self.data.test_dataloader()

    def predict_dataloader(self):
        return self.data.predict_dataloader()
