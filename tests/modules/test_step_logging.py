import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger

from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import Classifier


class Recorder(Logger):
    """Keeps what the Trainer sends to its loggers: ``{step: {key: value}}``."""

    def __init__(self):
        super().__init__()
        self.steps: dict[int, dict[str, float]] = {}

    name, version = "recorder", 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.steps.setdefault(step, {}).update(metrics)


class LossTape(L.Callback):
    """Every batch's training loss, as the step returned it."""

    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


class CountingClassifier(Classifier):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_calls = 0

    def log_dict(self, *args, **kwargs):
        self.log_calls += 1
        return super().log_dict(*args, **kwargs)


@pytest.mark.parametrize("every", [1, 3])
def test_loggers_get_every_due_step_and_log_is_called_only_then(every):
    dm = SyntheticDataModule(num_train=7 * 8 + 16, num_test=8, num_classes=3, image_size=8, batch_size=8, val_size=16)
    model = CountingClassifier(3, 1, net="small_cnn", net_args={"width": 4})
    recorder, tape = Recorder(), LossTape()
    trainer = L.Trainer(max_epochs=1, logger=recorder, callbacks=[tape], log_every_n_steps=every,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0)
    trainer.fit(model, dm)
    assert len(tape.losses) == 7
    due = [b for b in range(7) if (b + 1) % every == 0]
    logged = {step: m["train/loss"] for step, m in recorder.steps.items() if "train/loss" in m}
    assert sorted(logged) == due
    for b in due:
        assert logged[b] == pytest.approx(tape.losses[b])
    assert model.log_calls == len(set(due) | {6})  # the due batches and the epoch's last
    assert trainer.callback_metrics["train/loss"] == pytest.approx(tape.losses[-1])
