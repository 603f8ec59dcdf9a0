import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zerosum.callbacks import MaskImages
from zerosum.callbacks.mask_images import column_titles, mask_figure, mask_grid, near_ties


def test_near_ties_are_the_pixels_whose_two_largest_masks_are_close():
    masks = torch.tensor([[0.9, 0.05, 0.05], [0.48, 0.5, 0.02], [0.34, 0.33, 0.33]]).T.reshape(1, 3, 1, 3)
    assert near_ties(masks, 0.05).tolist() == [[[False, True, True]]]
    assert not near_ties(masks[:, :1], 0.05).any()


def test_grid_tiles_are_large_titled_and_show_occlusion():
    x = torch.ones(2, 3, 4, 4)  # 4 px images are enlarged
    masks = torch.zeros(2, 3, 4, 4)
    masks[:, 1] = 1.0  # mask 2 covers everything
    fig = mask_figure(x, masks, tile_px=64)
    fig.canvas.draw()
    axes = fig.axes
    assert len(axes) == 2 * len(column_titles(3)) == 2 * 8
    assert all(min(ax.get_window_extent().width, ax.get_window_extent().height) >= 64 for ax in axes)
    assert [ax.get_title().split("\n")[0] for ax in axes[:8]] == column_titles(3)
    tiles = {ax.get_title().split("\n")[0]: ax.images[0].get_array() for ax in axes[:8]}
    assert tiles["soft m2"].min() == 1 and tiles["soft m1"].max() == 0
    assert tiles["x(1-m2)"].max() == 0 and tiles["x(1-m1)"].min() == 1  # occluded by mask 2, untouched by mask 1
    grid = mask_grid(x, masks)
    assert grid.shape[0] == 3 and grid.shape[2] >= 8 * 64 and 0 <= grid.min() and grid.max() <= 1


class TwoMasks(L.LightningModule):
    """A user's own module: any ``predict_masks`` is drawn."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 8 * 8, 2)

    def predict_masks(self, x):
        left = torch.zeros(len(x), 1, 8, 8)
        left[..., :4] = 1
        return torch.cat([left, 1 - left], 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.lin(x.flatten(1)), y)

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Images(L.LightningDataModule):
    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.rand(8, 3, 8, 8), torch.randint(0, 2, (8,))), batch_size=4)

    val_dataloader = train_dataloader


def test_callback_writes_a_png_per_validation_from_a_plain_module(tmp_path):
    cb = MaskImages(num_images=3)
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, callbacks=[cb],
              default_root_dir=str(tmp_path), num_sanity_val_steps=0).fit(TwoMasks(), Images())
    assert cb.last_path and (tmp_path / "mask_grids" / "epoch_0000.png").exists()
    with pytest.raises(ValueError, match="tile_px"):
        MaskImages(tile_px=2)
