import lightning as L
import pytest

from zerosum.callbacks import ClassRobustness
from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import AdversarialTraining


def test_splits_choose_which_loops_are_attacked():
    dm = SyntheticDataModule(num_train=64, num_test=32, num_classes=4, image_size=8, normalize=False, batch_size=16,
                             val_size=16)
    model = AdversarialTraining(4, 1, net="small_cnn", net_args={"width": 4}, eps=0.0, data_mean=dm.mean,
                                data_std=dm.std)
    callback = ClassRobustness(steps=2, splits=("test",))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
                        inference_mode=False)
    trainer.validate(model, dm)
    assert callback.last == {}  # validation is not attacked
    trainer.test(model, dm)
    assert set(callback.last) == {"test"} and len(callback.last["test"]["robust"]) == 4
    with pytest.raises(ValueError, match=r"^splits: \['train'\]; allowed: a subset of val, test"):
        ClassRobustness(splits=("train",))
