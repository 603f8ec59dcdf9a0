import copy
import warnings

import lightning as L
import pytest
import torch

from tests.helpers.adios import per_mask_ssl_loss
from tests.helpers.ddp import RankSnapshot, assert_ranks_in_sync, ddp_trainer
from tests.helpers.ssl import optimizer_and_probe_state
from zerosum.callbacks import KNNAccuracy, MaskImages, OnlineLinearProbe
from zerosum.datamodules import SyntheticDataModule
from zerosum.modules import ADIOS
from zerosum.modules.adios import chunk_outputs, occlude
from zerosum.ssl import load_encoder
from zerosum.transforms import SimCLRTransform

TINY = dict(num_classes=4, in_channels=3, image_size=8, net="small_cnn", net_args={"width": 8},
            mask_net_args={"base_width": 4}, warmup_epochs=0, encoder_export=None)
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
    with pytest.raises(ValueError, match="num_masks: 1; allowed: >= 2"):
        tiny(num_masks=1)
    assert tiny(masking="none", num_masks=1).mask_net is None
    with pytest.raises(ValueError, match="mask_net"):
        tiny(mask_net="resnet")
    assert type(tiny(mask_net="double_conv_unet").mask_net).__name__ == "MaskUNet"


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
def test_batched_step_equals_the_per_mask_loop_in_training_mode(objective):
    """One encoder call with BatchNorm statistics per view and mask = the reference loop's separate
    calls: same loss, same occluder and encoder gradients, same BatchNorm running statistics."""
    torch.manual_seed(0)
    batched = tiny(objective, num_masks=3).train()
    loop = copy.deepcopy(batched)
    v1, v2 = views()
    results = []
    for model, loss_fn in ((batched, lambda m, *a: m.ssl_loss(*a)), (loop, per_mask_ssl_loss)):
        m1 = model.predict_masks(v1) if model.objective.mask_both_views else None
        loss, _ = loss_fn(model, v1, v2, m1, model.predict_masks(v2))
        g_mask = torch.autograd.grad(loss, list(model.mask_net.parameters()), retain_graph=True)
        g_enc = torch.autograd.grad(loss, list(model.encoder.backbone.parameters()))
        results.append((loss.detach(), g_mask, g_enc, [b.clone() for b in model.buffers()]))
    (l_b, gm_b, ge_b, buf_b), (l_l, gm_l, ge_l, buf_l) = results
    assert torch.allclose(l_b, l_l, rtol=1e-6, atol=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(gm_b, gm_l))
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(ge_b, ge_l))
    assert all(torch.allclose(a.float(), b.float(), atol=1e-6) for a, b in zip(buf_b, buf_l))


def test_pooled_batch_statistics_would_change_the_game():
    """The control: without per-group statistics the batched loss is not the loop's."""
    torch.manual_seed(0)
    model = tiny(num_masks=3).train()
    v1, v2 = views()
    masks = model.predict_masks(v2).detach()
    loop, _ = per_mask_ssl_loss(copy.deepcopy(model), v1, v2, None, masks)
    pooled = model.objective.encode(model.encoder, torch.cat([v1, occlude(v2, masks)]))
    parts = chunk_outputs(pooled, 4)
    pooled_loss = sum(model.objective.masked_loss((parts[0], None), (None, parts[k])) for k in range(1, 4))
    assert not torch.allclose(pooled_loss, loop, atol=1e-3)


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
    assert sizes["adios"] == [16 * 4, 16 * 4]  # clean view + 3 masked views in one call per player
    assert sizes["adios_s"] == [16 * 2, 16 * 2]


def test_zero_alpha_warns_and_a_collapse_is_reported_with_its_step():
    with pytest.warns(UserWarning, match="alpha: 0.0 turns the sparsity penalty off"):
        model = tiny(alpha=0.0, num_masks=3)
    with torch.no_grad():
        model.mask_net.head.bias.copy_(torch.tensor([30.0, 0.0, 0.0]))  # mask 1 takes every pixel
    v1, v2 = views()
    with pytest.warns(UserWarning, match=r"collapsed at step 1: the largest of the 3 masks covers 100.0%"):
        model.training_step(([v1, v2], None, None), 0)
    assert model.collapsed_at == 1
    healthy = tiny(num_masks=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        healthy.training_step(([v1, v2], None, None), 0)
    assert healthy.collapsed_at is None


def test_shuffled_mask_control_finds_masks_that_fit_their_image():
    """Planted: every image has its content in a random half and zeros elsewhere. Masks that occlude
    each image's own content hurt it more than another image's masks; masks that ignore the image do
    not (the gap is exactly 0)."""
    torch.manual_seed(0)
    model = tiny(masking="none").train()  # batch statistics: a random encoder that tells images apart
    x = torch.zeros(16, 3, 8, 8)
    side = torch.randint(0, 2, (16,))
    for b in range(16):
        x[b, :, :, 4 * side[b]:4 * side[b] + 4] = torch.randn(3, 8, 4)
    fitted = torch.zeros(16, 1, 8, 8)
    for b in range(16):
        fitted[b, :, :, 4 * side[b]:4 * side[b] + 4] = 1
    model.predict_masks = lambda images: fitted
    report = model.mask_report(x)
    assert report["mask_shuffle_gap"] > 0.5
    assert torch.isclose(report["mask_loss_own"] - report["mask_loss_shuffled"], report["mask_shuffle_gap"])
    same = torch.zeros(16, 1, 8, 8)
    same[..., :4] = 1
    model.predict_masks = lambda images: same
    assert model.mask_report(x)["mask_shuffle_gap"].abs() < 1e-6


def test_validation_logs_the_mask_diagnostics_and_training_exports_the_encoder(tmp_path):
    model = tiny(num_masks=3, encoder_export="encoder.pt")
    trainer = quick_trainer(tmp_path, max_steps=-1, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(model, datamodule(val_size=16))
    logged = trainer.callback_metrics
    for key in ("cover_min", "cover_max", "corr", "loss_own", "loss_shuffled", "shuffle_gap"):
        assert f"val/mask_{key}" in logged
    assert 0 <= logged["val/mask_cover_min"] <= 1 / 3 <= logged["val/mask_cover_max"] <= 1
    encoder = load_encoder(str(tmp_path / "encoder.pt"))
    x = torch.randn(4, 3, 8, 8)
    assert torch.allclose(encoder.features(x), model.eval().features(x), atol=1e-6)


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
    trainer = ddp_trainer(tmp_path, callbacks=callbacks, max_epochs=1)  # players synced by hand: no unused-parameter search
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


@pytest.mark.slow
def test_ddp_simclr_adios_gathers_negatives_and_stays_in_sync(tmp_path):
    torch.manual_seed(0)
    callbacks = [RankSnapshot(tmp_path, extra=optimizer_and_probe_state), OnlineLinearProbe()]
    trainer = ddp_trainer(tmp_path, callbacks=callbacks, max_epochs=1)
    trainer.fit(tiny("simclr", num_masks=2), datamodule(num_train=96))
    snaps = assert_ranks_in_sync(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(snaps[0]["extra"]["opt1"], snaps[1]["extra"]["opt1"]))
    assert "val/mask_shuffle_gap" in trainer.callback_metrics
