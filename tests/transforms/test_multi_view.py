import torch

from zerosum.datamodules import SyntheticDataModule
from zerosum.transforms import SimCLRTransform


def test_two_different_normalised_views_from_a_uint8_image():
    torch.manual_seed(0)
    t = SimCLRTransform(size=16, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    img = torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8)
    v1, v2 = t(img)
    assert v1.shape == v2.shape == (3, 16, 16) and v1.dtype == torch.float32
    assert not torch.equal(v1, v2)
    assert v1.min() < 0  # normalised


def test_as_datamodule_train_transform_gives_multi_view_batches():
    dm = SyntheticDataModule(batch_size=8, channels=3, image_size=8,
                             train_transform=SimCLRTransform(size=8, mean=[0.5] * 3, std=[0.3] * 3))
    dm.setup()
    views, y, idx = next(iter(dm.train_dataloader()))
    assert isinstance(views, list) and len(views) == 2 and views[0].shape == (8, 3, 8, 8)
    x, _, _ = next(iter(dm.val_dataloader()))
    assert isinstance(x, torch.Tensor)  # evaluation keeps single views
