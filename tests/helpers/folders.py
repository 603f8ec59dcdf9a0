"""A tiny ImageFolder written on the fly, and an ImageFolderDataModule that logs every decode (for
the test that checks that DDP ranks decode once and share the cache)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from zerosum.datamodules import ImageFolderDataModule


def make_image_folder(root: Path, classes: int = 2, train_per_class: int = 4, test_per_class: int = 2,
                      size: int = 8, seed: int = 0) -> Path:
    """``root/{train,test}/class<k>/<i>.png`` with random RGB images."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


class CountingFolderDataModule(ImageFolderDataModule):
    """Appends ``"<pid> <split>"`` to ``log_path`` every time a split is actually decoded."""

    def __init__(self, *args, log_path: str = "decodes.log", **kwargs):
        super().__init__(*args, **kwargs)
        self.log_path = log_path

    def decode_folder(self, sub: str):
        with open(self.log_path, "a") as f:
            f.write(f"{os.getpid()} {sub}\n")
        return super().decode_folder(sub)


def decoded_train_images(trainer, pl_module) -> dict:
    """What one rank holds: its decoded training images (via the datamodule's train split)."""
    images, labels = trainer.datamodule._decode(trainer.datamodule.train_dir)
    return {"images": images.clone(), "labels": labels.clone()}
