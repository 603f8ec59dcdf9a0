"""ImageFolderDataModule(in_memory=True): decoded once, shared through the on-disk cache."""

import torch

from tests.helpers.ddp import RankSnapshot, ddp_trainer, load_snapshots
from tests.helpers.folders import CountingFolderDataModule, decoded_train_images, make_image_folder
from zerosum.modules import Classifier


def decodes(log) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_cache_is_reused_and_refreshed_when_the_folder_changes(tmp_path):
    root = make_image_folder(tmp_path / "data")
    log = tmp_path / "decodes.log"
    make = lambda: CountingFolderDataModule(str(root), image_size=8, in_memory=True, log_path=str(log))  # noqa: E731
    first = make()
    first.prepare_data()
    first.setup()
    assert decodes(log)[1::2] == ["train", "test"]
    second = make()
    second.setup()  # a new process's setup: reads the cache, decodes nothing
    assert len(decodes(log)) == 4
    x1, y1 = first._decode("train")
    x2, y2 = second._decode("train")
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.dtype == torch.uint8 and x1.shape == (8, 3, 8, 8)
    make_image_folder(tmp_path / "data", train_per_class=5)  # one more image per class: stale cache
    third = make()
    assert len(third._decode("train")[0]) == 10 and decodes(log)[-1] == "train"


def test_cache_dir_is_used_when_given(tmp_path):
    root = make_image_folder(tmp_path / "data")
    dm = CountingFolderDataModule(str(root), image_size=8, in_memory=True, cache_dir=str(tmp_path / "cache"),
                                  log_path=str(tmp_path / "log"))
    dm.prepare_data()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".zerosum-cache-test-8px.pt",
                                                                    ".zerosum-cache-train-8px.pt"]


def test_two_ranks_decode_once_and_read_the_same_tensors(tmp_path):
    root = make_image_folder(tmp_path / "data")
    log = tmp_path / "decodes.log"
    dm = CountingFolderDataModule(str(root), image_size=8, in_memory=True, log_path=str(log), batch_size=4,
                                  val_size=2)
    model = Classifier(num_classes=2, in_channels=3, net_args={"width": 4})
    trainer = ddp_trainer(tmp_path, callbacks=[RankSnapshot(tmp_path, extra=decoded_train_images)],
                          limit_train_batches=1, limit_val_batches=1)
    trainer.fit(model, dm)
    lines = log.read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == ["test", "train"]  # each split decoded once
    assert len({line.split()[0] for line in lines}) == 1  # by one process
    a, b = (s["extra"] for s in load_snapshots(tmp_path))
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])
