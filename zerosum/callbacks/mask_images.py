"""Pictures of the occlusion model's masks (ADIOS, Shi et al. 2022, Fig. 1): each validation
epoch, a grid with one row per image: the image, each soft mask, each hard (argmax) mask and each
occluded image ``x * (1 - m_n)``; logged to TensorBoard and written as a PNG under the log dir."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import lightning as L
import torch
from torchvision.utils import make_grid, save_image

from zerosum.callbacks.batch_features import batch_images


def mask_grid(x: torch.Tensor, masks: torch.Tensor, mean: Optional[Sequence[float]] = None,
              std: Optional[Sequence[float]] = None, padding: int = 2) -> torch.Tensor:
    """``x: B x C x H x W`` (normalised with ``mean``/``std`` if given), ``masks: B x N x H x W``
    -> a ``3 x H' x W'`` image grid, rows ``[x, soft m_1..m_N, hard m_1..m_N, occluded 1..N]``."""
    b, n = masks.shape[:2]

    def show(img: torch.Tensor) -> torch.Tensor:
        if mean is not None and std is not None:
            img = img * torch.as_tensor(std, device=img.device).view(1, -1, 1, 1) + torch.as_tensor(mean, device=img.device).view(1, -1, 1, 1)
        img = img.clamp(0, 1)
        return img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img

    hard = torch.nn.functional.one_hot(masks.argmax(1), n).permute(0, 3, 1, 2).to(masks.dtype)
    occluded = x.unsqueeze(1) * (1 - masks.unsqueeze(2))  # B x N x C x H x W
    cols = [show(x).unsqueeze(1), masks.unsqueeze(2).expand(-1, -1, 3, -1, -1), hard.unsqueeze(2).expand(-1, -1, 3, -1, -1),
            show(occluded.flatten(0, 1)).view(b, n, 3, *x.shape[-2:])]
    tiles = torch.cat(cols, dim=1).flatten(0, 1)
    return make_grid(tiles.float().cpu(), nrow=1 + 3 * n, padding=padding, pad_value=1.0)


class MaskImages(L.Callback):
    """Needs a module with ``predict_masks(x) -> B x N x H x W`` (None: nothing to draw).

    Args:
        num_images: rows of the grid (taken from the first validation batch).
        dirname: PNGs go to ``<log dir>/<dirname>/epoch_<k>.png``.
    """

    def __init__(self, num_images: int = 8, dirname: str = "mask_grids"):
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        self.num_images, self.dirname = num_images, dirname
        self._x: Optional[torch.Tensor] = None
        self.last_path: Optional[str] = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and trainer.is_global_zero:
            self._x = batch_images(batch)[: self.num_images].detach().clone()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        x, self._x = self._x, None
        if trainer.sanity_checking:
            return
        log_dir = trainer.log_dir  # a collective call in DDP: every rank must ask
        if x is None or not trainer.is_global_zero or not hasattr(pl_module, "predict_masks"):
            return
        with torch.no_grad():
            masks = pl_module.predict_masks(x)
        if masks is None:
            return
        dm = trainer.datamodule
        normalized = getattr(dm, "normalize", False)
        grid = mask_grid(x, masks, getattr(dm, "mean", None) if normalized else None,
                         getattr(dm, "std", None) if normalized else None)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image("masks", grid, global_step=trainer.global_step)
        folder = os.path.join(log_dir or trainer.default_root_dir, self.dirname)
        os.makedirs(folder, exist_ok=True)
        self.last_path = os.path.join(folder, f"epoch_{trainer.current_epoch:04d}.png")
        save_image(grid, self.last_path)
