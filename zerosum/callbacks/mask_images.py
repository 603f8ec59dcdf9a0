"""Pictures of the occlusion model's masks (ADIOS, Shi et al. 2022, Fig. 1): each validation epoch,
one row per image with titled columns: the image, each soft mask ``m_n`` (white = occluded, on the
fixed scale 0..1, with the share of the image it covers underneath), the
argmax partition (one colour per mask; pixels whose two largest masks are within ``tie_margin``
of each other are drawn white: there the partition is a near-tie, not a decision) and each occluded
image ``x * (1 - m_n)``. Tiles are drawn at ``tile_px`` pixels or more (small images are enlarged
without smoothing). Written as a PNG under the log dir and logged to TensorBoard."""

from __future__ import annotations

import io
import os
from typing import Optional, Sequence

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from zerosum.atomic import atomic_write  # noqa: E402
from zerosum.callbacks.batch_features import batch_images  # noqa: E402


def near_ties(masks: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """``B x N x H x W`` soft masks -> ``B x H x W`` booleans: the largest and second-largest mask
    of the pixel differ by less than ``margin`` (always False for a single mask)."""
    if masks.shape[1] < 2:
        return torch.zeros(masks.shape[0], *masks.shape[2:], dtype=torch.bool, device=masks.device)
    top2 = masks.topk(2, dim=1).values
    return (top2[:, 0] - top2[:, 1]) < margin


def column_titles(num_masks: int) -> list[str]:
    """Titles of the grid's columns, left to right."""
    return (["image"] + [f"soft m{n + 1}" for n in range(num_masks)] + ["argmax"]
            + [f"x(1-m{n + 1})" for n in range(num_masks)])


def _show(img: torch.Tensor, mean: Optional[Sequence[float]], std: Optional[Sequence[float]]) -> np.ndarray:
    """``C x H x W`` (normalised with ``mean``/``std`` if given) -> ``H x W x 3`` in [0, 1]."""
    img = img.detach().float().cpu()
    if mean is not None and std is not None:
        img = img * torch.as_tensor(std).view(-1, 1, 1) + torch.as_tensor(mean).view(-1, 1, 1)
    img = img.clamp(0, 1)
    img = img.expand(3, -1, -1) if img.shape[0] == 1 else img
    return img.permute(1, 2, 0).numpy()


def mask_figure(x: torch.Tensor, masks: torch.Tensor, mean: Optional[Sequence[float]] = None,
                std: Optional[Sequence[float]] = None, title: Optional[str] = None, tile_px: int = 64,
                tie_margin: float = 0.05):
    """A matplotlib figure of the grid (see the module docstring); ``x: B x C x H x W``, ``masks: B x N x H x W``."""
    b, n = masks.shape[:2]
    titles = column_titles(n)
    dpi = 100
    width, height = 1.4 * tile_px / dpi, 1.7 * tile_px / dpi  # inches per tile, with room for its title and label
    fig, axes = plt.subplots(b, len(titles), figsize=(width * len(titles), height * b + (0.5 if title else 0.2)),
                             dpi=dpi, squeeze=False)
    masks = masks.detach().float().cpu()
    x = x.detach().cpu()
    ties = near_ties(masks, tie_margin)
    palette = plt.get_cmap("tab10" if n <= 10 else "tab20")
    colours = np.array([palette(i % palette.N)[:3] for i in range(n)])
    for r in range(b):
        partition = colours[masks[r].argmax(0).numpy()]
        partition[ties[r].numpy()] = 1.0
        tiles = ([_show(x[r], mean, std)] + [masks[r, k].numpy() for k in range(n)] + [partition]
                 + [_show(x[r] * (1 - masks[r, k]), mean, std) for k in range(n)])
        cover = masks[r].mean(dim=(-2, -1))
        for c, tile in enumerate(tiles):
            ax = axes[r, c]
            ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if 1 <= c <= n:
                ax.set_xlabel(f"covers {cover[c - 1]:.0%}", fontsize=7)
            if r == 0:
                ax.set_title(titles[c] if titles[c] != "argmax" else f"argmax\n(white: tie<{tie_margin:g})",
                             fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def mask_grid(x: torch.Tensor, masks: torch.Tensor, mean: Optional[Sequence[float]] = None,
              std: Optional[Sequence[float]] = None, title: Optional[str] = None, tile_px: int = 64,
              tie_margin: float = 0.05) -> torch.Tensor:
    """The grid as a ``3 x H x W`` float image in [0, 1] (for TensorBoard)."""
    fig = mask_figure(x, masks, mean, std, title, tile_px, tie_margin)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return torch.from_numpy(rgba).permute(2, 0, 1).float() / 255.0


def save_mask_grid(path: str, x: torch.Tensor, masks: torch.Tensor, mean: Optional[Sequence[float]] = None,
                   std: Optional[Sequence[float]] = None, title: Optional[str] = None, tile_px: int = 64,
                   tie_margin: float = 0.05) -> str:
    """Write the grid as a PNG at ``path`` (atomically: a temp file, then renamed)."""
    fig = mask_figure(x, masks, mean, std, title, tile_px, tie_margin)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    atomic_write(path, png.getvalue())
    return path


class MaskImages(L.Callback):
    """Needs a module with ``predict_masks(x) -> B x N x H x W`` (None: nothing to draw).

    Args:
        num_images: rows of the grid (taken from the first validation batch).
        dirname: PNGs go to ``<log dir>/<dirname>/epoch_<k>.png``.
        tile_px: smallest side of a tile in the picture, in pixels.
        tie_margin: argmax pixels whose two largest masks differ by less are drawn white.
    """

    def __init__(self, num_images: int = 8, dirname: str = "mask_grids", tile_px: int = 64, tie_margin: float = 0.05):
        if num_images < 1:
            raise ValueError(f"num_images: {num_images}; allowed: an integer >= 1")
        if tile_px < 8:
            raise ValueError(f"tile_px: {tile_px}; allowed: an integer >= 8")
        if not 0 <= tie_margin < 1:
            raise ValueError(f"tie_margin: {tie_margin}; allowed: 0 <= tie_margin < 1")
        self.num_images, self.dirname, self.tile_px, self.tie_margin = num_images, dirname, tile_px, tie_margin
        self._x: Optional[torch.Tensor] = None
        self.last_path: Optional[str] = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and trainer.is_global_zero:
            self._x = batch_images(batch)[: self.num_images].detach().clone()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        x, self._x = self._x, None
        if trainer.sanity_checking or trainer.fast_dev_run:  # fast_dev_run writes nothing
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
        mean, std = (getattr(dm, "mean", None), getattr(dm, "std", None)) if normalized else (None, None)
        title = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        folder = os.path.join(log_dir or trainer.default_root_dir, self.dirname)
        self.last_path = save_mask_grid(os.path.join(folder, f"epoch_{trainer.current_epoch:04d}.png"), x, masks,
                                        mean, std, title, self.tile_px, self.tie_margin)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image("masks", mask_grid(x, masks, mean, std, title, self.tile_px, self.tie_margin),
                                     global_step=trainer.global_step)
