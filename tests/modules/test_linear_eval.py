import lightning as L
import pytest
import torch

from tests.helpers.ddp import RankSnapshot, assert_ranks_in_sync, ddp_trainer
from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import ADIOS, LinearEval


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    model = ADIOS(num_classes=4, in_channels=1, image_size=8, net="small_cnn", net_args={"width": 8},
                  objective_args={"proj_hidden_dim": 16, "proj_output_dim": 8}, mask_net_args={"base_width": 4})
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    path = str(tmp_path / "adios.ckpt")
    trainer.save_checkpoint(path)
    return path, model


def test_linear_eval_trains_only_the_head_on_frozen_features(tmp_path, ckpt):
    path, original = ckpt
    dm = SyntheticDataModule(batch_size=32, num_train=256)
    model = LinearEval(path, num_classes=4, cosine=False)
    frozen = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(model, dm)
    assert all(torch.equal(frozen[k], v) for k, v in model.backbone.state_dict().items())  # incl. BN statistics
    assert trainer.callback_metrics["val/acc"] > 0.5  # 4 classes: chance is 0.25
    with pytest.raises(FileNotFoundError, match="ckpt_path"):
        LinearEval(str(tmp_path / "missing.ckpt"), num_classes=4)


def test_ddp_linear_eval_in_sync(tmp_path, ckpt):
    path, _ = ckpt
    trainer = ddp_trainer(tmp_path, callbacks=[RankSnapshot(tmp_path)], max_epochs=1)
    trainer.fit(LinearEval(path, num_classes=4), SyntheticDataModule(batch_size=16, num_train=128))
    assert_ranks_in_sync(tmp_path)


def test_linear_eval_on_the_exported_encoder_alone(tmp_path, ckpt):
    _, original = ckpt
    path = original.export_encoder(str(tmp_path / "encoder.pt"))
    model = LinearEval(encoder_path=path, num_classes=4, cosine=False)
    assert not hasattr(model.backbone, "mask_net")  # only the encoder is loaded
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(model.backbone.features(x), original.eval().features(x), atol=1e-6)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(model, SyntheticDataModule(batch_size=32, num_train=256))
    assert trainer.callback_metrics["val/acc"] > 0.5
    with pytest.raises(ValueError, match="ckpt_path, encoder_path"):
        LinearEval(num_classes=4)
    with pytest.raises(FileNotFoundError, match="encoder_path"):
        LinearEval(encoder_path=str(tmp_path / "missing.pt"), num_classes=4)
