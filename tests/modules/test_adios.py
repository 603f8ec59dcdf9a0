import lightning as L
import pytest
import torch

from tests.helpers.ddp import RankSnapshot, assert_ranks_in_sync, ddp_trainer
from tests.helpers.ssl import optimizer_and_probe_state
from zerosum.callbacks import KNNAccuracy, MaskImages, OnlineLinearProbe
from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import ADIOS
from zerosum.transforms import SimCLRTransform

TINY = dict(num_classes=4, in_channels=3, image_size=8, net="small_cnn", net_args={"width": 8},
            mask_net_args={"base_width": 4}, warmup_epochs=0)
HEADS = {"simclr": {"proj_hidden_dim": 16, "proj_output_dim": 8},
         "byol": {"proj_hidden_dim": 16, "proj_output_dim": 8, "pred_hidden_dim": 16},
         "simsiam": {"proj_hidden_dim": 16, "proj_output_dim": 8, "pred_hidden_dim": 4, "use_both_mask": True,
                     "use_symmetry_mask": True}}


def tiny(objective="simclr", **kw) -> ADIOS:
    args = {**TINY, "objective": objective, "objective_args": HEADS[objective], **kw}
    return ADIOS(**args)


def datamodule(**kw) -> SyntheticDataModule:
    return SyntheticDataModule(channels=3, image_size=8, train_transform=SimCLRTransform(8, [0.5] * 3, [0.3] * 3),
                               **{"batch_size": 16, "num_train": 64, **kw})


def views(b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 8, 8, generator=g), torch.randn(b, 3, 8, 8, generator=g)


class GradRecorder(L.Callback):
    """Before each optimizer step: did the encoder / the occluder receive a nonzero gradient?"""

    def __init__(self):
        self.steps = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        def has(mod):
            return any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())
        which = [o.optimizer if hasattr(o, "optimizer") else o for o in trainer.optimizers].index(
            optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer)
        self.steps.append((which, has(pl_module.encoder), has(pl_module.mask_net)))


class EncoderBatchSizes(L.Callback):
    def on_fit_start(self, trainer, pl_module):
        self.sizes = []
        pl_module.encoder.backbone.register_forward_hook(lambda m, i, o: self.sizes.append(i[0].shape[0]))


def quick_trainer(tmp_path, callbacks=(), **kw):
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=str(tmp_path), callbacks=list(callbacks),
                     num_sanity_val_steps=0, **{"max_steps": 1, "limit_val_batches": 0, **kw})


def test_masks_partition_pixels_and_options_are_checked():
    m = tiny(num_masks=5).predict_masks(torch.randn(3, 3, 8, 8))
    assert m.shape == (3, 5, 8, 8) and torch.allclose(m.sum(1), torch.ones(3, 8, 8), atol=1e-5)
    with pytest.raises(ValueError, match="masking"):
        tiny(masking="gaussian")
    with pytest.raises(ValueError, match="objective"):
        ADIOS(**{**TINY, "objective": "moco"})


def test_each_player_gets_gradients_only_in_its_own_step(tmp_path):
    rec = GradRecorder()
    quick_trainer(tmp_path, [rec], max_steps=2).fit(tiny(), datamodule())  # max_steps counts both optimizers
    assert rec.steps == [(0, True, False), (1, False, True)]


def test_single_view_batches_raise_a_clear_error(tmp_path):
    dm = SyntheticDataModule(channels=3, image_size=8, batch_size=16)
    with pytest.raises(ValueError, match="SimCLRTransform"):
        quick_trainer(tmp_path).fit(tiny(), dm)


def test_mask_step_increases_the_ssl_loss_for_a_fixed_encoder():
    torch.manual_seed(0)
    model = tiny(num_masks=3, alpha=0.01)  # train mode: batch-norm statistics of the batch
    v1, _ = views(16)
    v2 = v1 + 0.1 * torch.randn_like(v1)  # two views of the same images
    enc_before = [p.detach().clone() for p in model.encoder.parameters()]
    model.encoder.requires_grad_(False), model.objective.requires_grad_(False)
    opt = torch.optim.Adam(model.mask_net.parameters(), lr=0.01)

    def ssl():
        return model.ssl_loss(v1, v2, None, model.predict_masks(v2))[0]

    before = ssl().item()
    for _ in range(30):
        opt.zero_grad()
        masks = model.predict_masks(v2)
        (-(model.ssl_loss(v1, v2, None, masks)[0] - model.penalty(masks))).backward()
        opt.step()
    assert ssl().item() > before + 1.0
    assert all(torch.equal(a, b) for a, b in zip(enc_before, model.encoder.parameters()))


@pytest.mark.parametrize("objective", ["simclr", "byol", "simsiam"])
def test_batched_masks_equal_the_per_mask_loop(objective):
    torch.manual_seed(0)
    model = tiny(objective, num_masks=3).eval()
    v1, v2 = views()
    m1 = model.predict_masks(v1) if model.objective.mask_both_views else None
    m2 = model.predict_masks(v2)
    batched, h_b = model.ssl_loss(v1, v2, m1, m2, batched=True)
    loop, h_l = model.ssl_loss(v1, v2, m1, m2, batched=False)
    assert torch.allclose(batched, loop, atol=1e-5)
    g_b = torch.autograd.grad(batched, list(model.mask_net.parameters()), retain_graph=True)
    g_l = torch.autograd.grad(loop, list(model.mask_net.parameters()))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_b, g_l))


def test_adios_s_uses_one_mask_per_sample_and_two_encoder_passes(tmp_path):
    masks = torch.rand(4, 3, 2, 2).softmax(1)
    choice = torch.tensor([2, 0, 1, 2])
    picked = ADIOS.pick_one(masks, choice)
    assert picked.shape == (4, 1, 2, 2)
    assert all(torch.equal(picked[b, 0], masks[b, choice[b]]) for b in range(4))
    sizes = {}
    for masking in ("adios", "adios_s"):
        rec = EncoderBatchSizes()
        quick_trainer(tmp_path, [rec], max_steps=2).fit(tiny(masking=masking, num_masks=3), datamodule())
        sizes[masking] = rec.sizes
    assert sizes["adios"] == [16, 48, 16, 48]
    assert sizes["adios_s"] == [16, 16, 16, 16]


@pytest.mark.parametrize("masking", ["none", "random_patch", "block"])
def test_baselines_train_the_encoder_only(tmp_path, masking):
    model = tiny(masking=masking)
    assert model.mask_net is None
    quick_trainer(tmp_path, max_steps=1).fit(model, datamodule())
    assert len(model.trainer.optimizers) == 1


def test_byol_target_is_an_ema_of_the_online_network():
    model = tiny("byol")
    obj = model.objective
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    online = next(model.encoder.parameters()).detach().clone()
    target = next(obj.target_encoder.parameters()).detach().clone()
    tau = obj.tau_at(0.5)
    obj.after_encoder_step(model.encoder, progress=0.5)
    assert torch.allclose(next(obj.target_encoder.parameters()), tau * target + (1 - tau) * online, atol=1e-6)
    assert obj.tau_at(0.0) == pytest.approx(0.99) and obj.tau_at(1.0) == pytest.approx(1.0)
    assert obj.tau_at(0.25) < obj.tau_at(0.75)


@pytest.mark.slow
def test_ddp_byol_adios_with_callbacks_stays_in_sync(tmp_path):
    torch.manual_seed(0)
    model = tiny("byol", num_masks=2)
    callbacks = [RankSnapshot(tmp_path, extra=optimizer_and_probe_state), OnlineLinearProbe(),
                 KNNAccuracy(k=5), MaskImages(num_images=2)]
    trainer = ddp_trainer(tmp_path, callbacks=callbacks, find_unused_parameters=True, max_epochs=1)
    trainer.fit(model, datamodule(num_train=96))
    snaps = assert_ranks_in_sync(tmp_path)
    e0, e1 = snaps[0]["extra"], snaps[1]["extra"]
    assert e0["opt0"] and e0["opt1"] and "probe" in e0
    for key in ("opt0", "opt1", "probe"):
        assert all(torch.equal(a, b) for a, b in zip(e0[key], e1[key])), key
    assert e0["tau"] == e1["tau"] and e0["tau"] > 0.99
    state = snaps[0]["state"]
    assert not torch.equal(state["objective.target_encoder.backbone.0.0.weight"], state["encoder.backbone.0.0.weight"])
    assert list((tmp_path / "mask_grids").glob("epoch_*.png"))
