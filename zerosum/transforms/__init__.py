"""Data transforms: multi-view self-supervised augmentations."""

from zerosum.transforms.multi_view import MultiView, SimCLRTransform, simclr_augmentation

__all__ = ["MultiView", "SimCLRTransform", "simclr_augmentation"]
