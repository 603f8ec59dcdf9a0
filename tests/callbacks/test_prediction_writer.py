"""PredictionWriter: ``predictions.csv`` holds every predicted sample once, with the label the model
predicts and its probabilities, on one process and gathered from 2 DDP processes (whose sampler pads
an odd split with a repeated sample)."""

import csv

import lightning as L
import torch

from tests.helpers.ddp import ddp_trainer
from zerosum.callbacks import PredictionWriter
from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import Classifier


def read(path) -> dict[int, list[float]]:
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["index", "label", "target"]
    return {int(r[0]): [float(v) for v in r[1:]] for r in rows[1:]}


def model_and_data():
    torch.manual_seed(0)
    return Classifier(num_classes=4, in_channels=1, net_args={"width": 8}), SyntheticDataModule(
        num_test=51, batch_size=8)


def expected(model, data) -> dict[int, tuple[int, int]]:
    data.setup("predict")
    model.eval()
    out = {}
    with torch.no_grad():
        for x, y, idx in data.predict_dataloader():
            for i, p, t in zip(idx.tolist(), model(x).argmax(1).tolist(), y.tolist()):
                out[i] = (p, t)
    return out


def check(rows: dict[int, list[float]], truth: dict[int, tuple[int, int]]) -> None:
    assert sorted(rows) == sorted(truth) and len(rows) == 51
    for i, (label, target, *probs) in rows.items():
        assert (int(label), int(target)) == truth[i]
        assert abs(sum(probs) - 1) < 1e-4 and int(label) == max(range(4), key=probs.__getitem__)


def test_writes_one_row_per_sample(tmp_path):
    model, data = model_and_data()
    truth = expected(model, data)
    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[PredictionWriter(output_dir=str(tmp_path))],
                        enable_progress_bar=False, default_root_dir=str(tmp_path))
    trainer.predict(model, datamodule=data, return_predictions=False)
    check(read(tmp_path / "predictions.csv"), truth)


def test_ddp_gathers_every_rank_and_drops_padding(tmp_path):
    model, data = model_and_data()
    truth = expected(model, data)
    trainer = ddp_trainer(tmp_path, callbacks=[PredictionWriter(output_dir=str(tmp_path))])
    trainer.predict(model, datamodule=data, return_predictions=False)
    check(read(tmp_path / "predictions.csv"), truth)


def test_leaves_other_outputs_alone(tmp_path):
    class Plain(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(64, 4)

        def predict_step(self, batch, batch_idx):
            return self.layer(batch[0].flatten(1))

    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[PredictionWriter(output_dir=str(tmp_path))],
                        enable_progress_bar=False, default_root_dir=str(tmp_path))
    out = trainer.predict(Plain(), datamodule=SyntheticDataModule(num_test=10, batch_size=4))
    assert len(out) == 3 and not (tmp_path / "predictions.csv").exists()
