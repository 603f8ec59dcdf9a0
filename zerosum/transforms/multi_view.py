"""Multi-view augmentations for self-supervised learning (SimCLR, Chen et al. 2020, Sec. 3 and
Appendix A). Used as a datamodule's ``train_transform``: a sample becomes a list of views, so a
training batch is ``([view_1, view_2], y, idx)``."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torchvision.transforms import v2


class MultiView:
    """Applies each transform of ``transforms`` to the same input; returns the list of views."""

    def __init__(self, transforms: Sequence[Callable]):
        if len(transforms) < 1:
            raise ValueError("MultiView needs at least one transform")
        self.transforms = list(transforms)

    def __call__(self, x):
        return [t(x) for t in self.transforms]


def simclr_augmentation(size: int, mean: Optional[Sequence[float]], std: Optional[Sequence[float]],
                        crop_scale: tuple[float, float] = (0.08, 1.0), brightness: float = 0.4,
                        contrast: float = 0.4, saturation: float = 0.2, hue: float = 0.1,
                        jitter_p: float = 0.8, gray_p: float = 0.2, blur_p: float = 0.0,
                        solarize_p: float = 0.0, flip_p: float = 0.5) -> v2.Compose:
    """One SimCLR-style view: random resized crop, flip, colour jitter, grayscale, optional blur and
    solarisation, then (optionally) normalisation. Input: PIL image or ``uint8`` tensor."""
    steps: list = [v2.ToImage(), v2.RandomResizedCrop(size, scale=tuple(crop_scale), antialias=True)]
    if flip_p > 0:
        steps.append(v2.RandomHorizontalFlip(flip_p))
    if jitter_p > 0:
        steps.append(v2.RandomApply([v2.ColorJitter(brightness, contrast, saturation, hue)], p=jitter_p))
    if gray_p > 0:
        steps.append(v2.RandomGrayscale(gray_p))
    if blur_p > 0:
        k = max(3, (size // 10) | 1)
        steps.append(v2.RandomApply([v2.GaussianBlur(k, sigma=(0.1, 2.0))], p=blur_p))
    if solarize_p > 0:
        steps.append(v2.RandomSolarize(threshold=128, p=solarize_p))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if mean is not None and std is not None:
        steps.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(steps)


class SimCLRTransform(MultiView):
    """``num_views`` independent SimCLR-style views of a sample (default 2).

    ``mean``/``std`` should be the datamodule's (ADIOS masks normalised views); ``None`` keeps [0, 1]
    pixels. ``blur_p`` defaults to 0.5 from 64 px up (SimCLR uses blur on ImageNet, not CIFAR).
    Grayscale images (one channel) get no colour jitter (set ``jitter_p: 0`` explicitly for them).

    YAML::

        data:
          init_args:
            train_transform:
              class_path: zerosum.transforms.SimCLRTransform
              init_args: {size: 32, mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}
    """

    def __init__(self, size: int = 32, mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 num_views: int = 2, crop_scale: Sequence[float] = (0.08, 1.0), brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.2, hue: float = 0.1, jitter_p: float = 0.8,
                 gray_p: float = 0.2, blur_p: Optional[float] = None, solarize_p: float = 0.0, flip_p: float = 0.5):
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        if len(crop_scale) != 2 or not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must be (low, high) with 0 < low <= high <= 1, got {crop_scale}")
        blur = (0.5 if size >= 64 else 0.0) if blur_p is None else blur_p
        view = simclr_augmentation(size, mean, std, tuple(crop_scale), brightness, contrast, saturation, hue,
                                   jitter_p, gray_p, blur, solarize_p, flip_p)
        super().__init__([view] * num_views)
