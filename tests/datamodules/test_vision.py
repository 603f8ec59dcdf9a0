import pytest
import torch
from PIL import Image

from zerosum.datamodules import (
    CIFAR10DataModule,
    DataNotFoundError,
    DigitsDataModule,
    ImageFolderDataModule,
    STL10DataModule,
    SyntheticDataModule,
)


def test_digits_split_sizes_cover_all_samples_once():
    dm = DigitsDataModule(val_size=0.1, test_size=0.2)
    dm.setup()
    n_test = round(0.2 * 1797)
    n_val = round(0.1 * (1797 - n_test))
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (1797 - n_test - n_val, n_val, n_test)
    train = dm.train_set.dataset.dataset.indices[dm.train_set.dataset.indices]
    val = dm.val_set.dataset.dataset.indices[dm.val_set.dataset.indices]
    test = dm.test_set.dataset.dataset.indices
    everything = torch.cat([train, val, test])
    assert len(everything.unique()) == 1797


def test_split_is_deterministic_in_seed_and_changes_with_it():
    a, b, c = DigitsDataModule(seed=1), DigitsDataModule(seed=1), DigitsDataModule(seed=2)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.val_set.dataset.indices, b.val_set.dataset.indices)
    assert not torch.equal(a.val_set.dataset.indices, c.val_set.dataset.indices)


def test_batches_yield_the_index_of_each_sample():
    dm = SyntheticDataModule(batch_size=8, augment=False)
    dm.setup()
    x, y, idx = next(iter(dm.train_dataloader()))
    for row, i in enumerate(idx.tolist()):
        xi, yi, ii = dm.train_set_eval[i]
        assert ii == i and yi == y[row] and torch.equal(xi, x[row])


def test_digits_resize_and_channels_are_linked_facts():
    dm = DigitsDataModule(image_size=32, channels=3)
    dm.setup()
    x, _, _ = dm.train_set[0]
    assert x.shape == (3, 32, 32) == dm.image_shape
    assert (dm.in_channels, dm.image_size, dm.num_classes) == (3, 32, 10)


def test_normalize_false_keeps_pixels_in_unit_box():
    dm = DigitsDataModule(normalize=False)
    dm.setup()
    x = torch.stack([dm.train_set[i][0] for i in range(50)])
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9


def test_train_augmentation_only_on_train_set():
    dm = SyntheticDataModule(image_size=16, augment=True, seed=3)
    dm.setup()
    torch.manual_seed(0)
    views = torch.stack([dm.train_set[0][0] for _ in range(8)])
    assert not all(torch.equal(views[0], v) for v in views[1:])
    assert torch.equal(dm.train_set_eval[0][0], dm.train_set_eval[0][0])


def test_max_train_samples_keeps_a_seeded_subset():
    dm = SyntheticDataModule(num_train=200, max_train_samples=50, max_test_samples=10)
    dm.setup()
    assert len(dm.train_set) == 50 and len(dm.test_set) == 10


def test_offline_error_names_dataset_root_and_remedy(tmp_path):
    dm = CIFAR10DataModule(root=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(DataNotFoundError) as err:
        dm.setup()
    message = str(err.value)
    assert "CIFAR10" in message and str(tmp_path / "nowhere") in message and "download" in message


def test_stl10_offline_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="STL10"):
        STL10DataModule(root=str(tmp_path), download=False, unlabeled=True).setup()


def test_missing_image_folder_names_the_path(tmp_path):
    with pytest.raises(DataNotFoundError, match="train"):
        ImageFolderDataModule(root=str(tmp_path / "missing"), image_size=8)


def _write_folder(root, classes=("cat", "dog", "emu"), per_class=4):
    g = torch.Generator().manual_seed(0)
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = (torch.rand(12, 12, 3, generator=g) * 60 + 60 * c).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")


def test_image_folder_in_memory_matches_disk(tmp_path):
    _write_folder(tmp_path)
    disk = ImageFolderDataModule(root=str(tmp_path), image_size=8, val_size=2, augment=False)
    memory = ImageFolderDataModule(root=str(tmp_path), image_size=8, val_size=2, augment=False, in_memory=True)
    assert disk.num_classes == memory.num_classes == 3
    disk.setup(), memory.setup()
    assert len(disk.train_set) == len(memory.train_set) == 10
    for i in range(len(disk.test_set)):
        assert disk.test_set[i][1] == memory.test_set[i][1]
        assert torch.allclose(disk.test_set[i][0], memory.test_set[i][0], atol=1e-6)
    # a second datamodule reads the decoded cache written by the first
    assert any(p.name.startswith(".zerosum-cache-test") for p in tmp_path.iterdir())


def test_val_size_count_given_as_float_from_yaml():
    dm = SyntheticDataModule(num_train=200, val_size=50.0)
    dm.setup()
    assert len(dm.val_set) == 50 and len(dm.train_set) == 150
    with pytest.raises(ValueError, match="val_size"):
        SyntheticDataModule(val_size=2.5)
