"""Image folders (``root/train/<class>/*.jpg`` and ``root/test/<class>/*.jpg``): ImageNet-100,
Caltech-256 and the CIFAR-10 JPEG folder.

``in_memory=True`` decodes every image once (resized to ``image_size``) into a ``uint8`` tensor:
50k CIFAR JPEGs then cost ~150 MB and no decoding per epoch, which makes 2-core CPU runs practical.

Decoded once per machine, not once per process: the tensors are cached on disk (beside the images when
``root`` is writable, else under the system's temporary folder, or in ``cache_dir``). Under a Trainer,
``prepare_data`` runs on the first process of each node only and the others wait for it (Lightning's
barrier), so that process decodes and writes the cache (atomically) and every rank's ``setup`` reads
it. A cache is used while it matches the folder: the same class folders, number of files and newest
modification time of the split folder and its class folders (an image edited in place is not noticed:
delete the cache file).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.transforms import v2

from zerosum.atomic import atomic_file
from zerosum.datamodules.indexed import TensorImageDataset
from zerosum.datamodules.vision import DataNotFoundError, VisionDataModule

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageFolderDataModule(VisionDataModule):
    """Images in class folders: ``root/<train_dir>/<class>/*`` and ``root/<test_dir>/<class>/*``.

    Further arguments are :class:`VisionDataModule`'s; the module docstring explains ``in_memory``.

    Args:
        root: folder holding the split folders.
        train_dir: sub-folder of ``root`` holding the official training split.
        test_dir: sub-folder of ``root`` holding the official test split.
        image_size: images are resized (short side) and centre-cropped to this size.
        mean: per-channel normalisation mean (default ImageNet's).
        std: per-channel normalisation standard deviation (default ImageNet's).
        download: unused (image folders are never downloaded).
        in_memory: decode all images once into memory (shared through an on-disk cache).
        cache_dir: folder of the decoded-image cache (default: ``root`` if writable, else a folder
            under the system's temporary directory).
    """

    name = "ImageFolder"

    def __init__(
        self, root: str, *args, train_dir: str = "train", test_dir: str = "test", image_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, in_memory: bool = False,
        download: bool = False, cache_dir: Optional[str] = None, **kwargs,
    ):
        super().__init__(root, *args, download=download, **kwargs)
        self.train_dir, self.test_dir, self.in_memory, self.cache_dir = train_dir, test_dir, in_memory, cache_dir
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_shape = (3, image_size, image_size)
        self.num_classes = len(self._classes(train_dir))
        self._decoded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _folder(self, sub: str) -> str:
        path = os.path.join(self.root, sub)
        if not os.path.isdir(path):
            raise DataNotFoundError(
                f"root: no folder {path!r} ({self.name}, split folder {sub!r}); allowed: the folder that holds "
                f"the split folders, laid out as {os.path.join(self.root, sub, '<class>', '<image>.jpg')}"
            )
        return path

    def _classes(self, sub: str) -> list[str]:
        return sorted(e.name for e in os.scandir(self._folder(sub)) if e.is_dir())

    def prepare_data(self) -> None:
        """Check the split folders; with ``in_memory``, decode them into the cache (this runs on one
        process per node while the others wait, see the module docstring)."""
        for sub in (self.train_dir, self.test_dir):
            self._folder(sub)
            if self.in_memory:
                self._decode(sub)

    def _resize(self) -> v2.Compose:
        return v2.Compose([v2.Resize(self.image_size, antialias=True), v2.CenterCrop(self.image_size)])

    def _default_transform(self, train: bool) -> Callable:
        if self.image_size <= 64 or not train or not self.augment:
            base = super()._default_transform(train)
            return base if self.in_memory else v2.Compose([self._resize(), base])
        steps = [v2.ToImage(), v2.RandomResizedCrop(self.image_size, antialias=True), v2.RandomHorizontalFlip(),
                 v2.ToDtype(torch.float32, scale=True)]
        if self.normalize:
            steps.append(v2.Normalize(list(self.mean), list(self.std)))
        return v2.Compose(steps)

    # ---- decoding once, shared through the cache -------------------------------------------------
    def cache_path(self, sub: str) -> str:
        """Where split ``sub`` is cached: ``cache_dir``, else ``root`` if writable, else a temp folder."""
        name = f".zerosum-cache-{sub}-{self.image_size}px.pt"
        if self.cache_dir:
            return os.path.join(self.cache_dir, name)
        if os.access(self.root, os.W_OK):
            return os.path.join(self.root, name)
        key = hashlib.sha1(os.path.abspath(self.root).encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), "zerosum-cache", key, name)

    def folder_stamp(self, sub: str) -> list:
        """What a cache must match: class folders, number of files, newest modification time."""
        folder = self._folder(sub)
        classes = self._classes(sub)
        dirs = [folder] + [os.path.join(folder, c) for c in classes]
        count = sum(1 for c in classes for e in os.scandir(os.path.join(folder, c)) if e.is_file())
        return [classes, count, max(os.path.getmtime(d) for d in dirs)]

    def decode_folder(self, sub: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image of split ``sub`` resized to ``image_size``, as ``uint8``, and the labels."""
        data = datasets.ImageFolder(self._folder(sub))
        to_uint8 = v2.Compose([v2.ToImage(), self._resize()])
        images = torch.stack([to_uint8(data.loader(path)) for path, _ in data.samples])
        return images, torch.as_tensor(data.targets, dtype=torch.long)

    def _decode(self, sub: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Split ``sub`` from memory, else from a cache that matches the folder, else decoded (and cached)."""
        if sub in self._decoded:
            return self._decoded[sub]
        path, stamp = self.cache_path(sub), self.folder_stamp(sub)
        cached = None
        if os.path.exists(path):
            try:
                cached = torch.load(path)
            except (OSError, RuntimeError, EOFError):
                cached = None
        if cached is not None and cached.get("stamp") == stamp:
            self._decoded[sub] = (cached["images"], cached["labels"])
            return self._decoded[sub]
        images, labels = self.decode_folder(sub)
        self._decoded[sub] = (images, labels)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with atomic_file(path) as tmp:
                torch.save({"images": images, "labels": labels, "stamp": stamp}, tmp)
        except OSError:
            pass  # read-only everywhere: every process decodes for itself
        return self._decoded[sub]

    def load_split(self, split: str, transform: Optional[Callable]) -> Dataset:
        sub = self.train_dir if split == "train" else self.test_dir
        if self.in_memory:
            return TensorImageDataset(*self._decode(sub), transform=transform)
        return datasets.ImageFolder(self._folder(sub), transform=transform)
