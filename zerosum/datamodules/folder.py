"""Image folders (``root/train/<class>/*.jpg`` and ``root/test/<class>/*.jpg``): ImageNet-100,
Caltech-256 and the CIFAR-10 JPEG folder.

``in_memory=True`` decodes every image once (resized to ``image_size``) into a ``uint8`` tensor:
50k CIFAR JPEGs then cost ~150 MB and no decoding per epoch, which makes 2-core CPU runs practical.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.transforms import v2

from zerosum.datamodules.indexed import TensorImageDataset
from zerosum.datamodules.vision import DataNotFoundError, VisionDataModule

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageFolderDataModule(VisionDataModule):
    """Args (beyond :class:`VisionDataModule`'s):
        train_dir / test_dir: sub-folders of ``root`` holding the official splits.
        image_size: images are resized (short side) and centre-cropped to this size.
        mean / std: normalisation (default ImageNet's).
        in_memory: decode all images once into memory.
    """

    name = "ImageFolder"

    def __init__(
        self, root: str, *args, train_dir: str = "train", test_dir: str = "test", image_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, in_memory: bool = False,
        download: bool = False, **kwargs,
    ):
        super().__init__(root, *args, download=download, **kwargs)
        self.train_dir, self.test_dir, self.in_memory = train_dir, test_dir, in_memory
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_shape = (3, image_size, image_size)
        self.num_classes = len(self._classes(train_dir))
        self._decoded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _folder(self, sub: str) -> str:
        path = os.path.join(self.root, sub)
        if not os.path.isdir(path):
            raise DataNotFoundError(
                f"{self.name}: no folder {path!r} (root={self.root!r}, split folder {sub!r}). Expected "
                f"{os.path.join(self.root, sub, '<class>', '<image>.jpg')}; set data.init_args.root to the "
                "folder that holds the split folders."
            )
        return path

    def _classes(self, sub: str) -> list[str]:
        return sorted(e.name for e in os.scandir(self._folder(sub)) if e.is_dir())

    def prepare_data(self) -> None:
        self._folder(self.train_dir), self._folder(self.test_dir)

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

    def _decode(self, sub: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode a split once; the tensors are cached beside the images (if writable) for later runs."""
        if sub not in self._decoded:
            folder = self._folder(sub)
            cache = os.path.join(self.root, f".zerosum-cache-{sub}-{self.image_size}px.pt")
            if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(folder):
                self._decoded[sub] = torch.load(cache)
            else:
                data = datasets.ImageFolder(folder)
                to_uint8 = v2.Compose([v2.ToImage(), self._resize()])
                images = torch.stack([to_uint8(data.loader(path)) for path, _ in data.samples])
                self._decoded[sub] = (images, torch.as_tensor(data.targets, dtype=torch.long))
                try:
                    tmp = f"{cache}.{os.getpid()}.tmp"
                    torch.save(self._decoded[sub], tmp)
                    os.replace(tmp, cache)
                except OSError:
                    pass
        return self._decoded[sub]

    def load_split(self, split: str, transform: Optional[Callable]) -> Dataset:
        sub = self.train_dir if split == "train" else self.test_dir
        if self.in_memory:
            return TensorImageDataset(*self._decode(sub), transform=transform)
        return datasets.ImageFolder(self._folder(sub), transform=transform)
