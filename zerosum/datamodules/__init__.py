"""LightningDataModules. Every batch is ``(x, y, index)``."""

from zerosum.datamodules.constructed import ConstructedDataModule
from zerosum.datamodules.construction import ConstructionData, ShardDataset
from zerosum.datamodules.digits import DigitsDataModule
from zerosum.datamodules.folder import ImageFolderDataModule
from zerosum.datamodules.pool import ActivePoolDataModule, EpochShuffleSampler
from zerosum.datamodules.indexed import IndexedDataset, Subset, TensorImageDataset, dataset_targets
from zerosum.datamodules.scenario import ScenarioDataModule
from zerosum.datamodules.synthetic import SyntheticDataModule
from zerosum.datamodules.torchvision_sets import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    STL10DataModule,
    SVHNDataModule,
)
from zerosum.datamodules.vision import DataNotFoundError, VisionDataModule
from zerosum.datamodules.wrapped import WrappedDataModule

__all__ = [
    "ActivePoolDataModule", "EpochShuffleSampler",
    "CIFAR10DataModule", "ConstructedDataModule", "ConstructionData", "CIFAR100DataModule", "DataNotFoundError",
    "DigitsDataModule", "FashionMNISTDataModule", "ImageFolderDataModule", "IndexedDataset", "MNISTDataModule",
    "STL10DataModule", "SVHNDataModule", "ScenarioDataModule", "ShardDataset", "Subset", "SyntheticDataModule",
    "TensorImageDataset", "VisionDataModule", "WrappedDataModule", "dataset_targets",
]
