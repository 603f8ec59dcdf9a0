import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tests.attacks.reference import normalized_step, project
from zerosum.attacks import pgd
from zerosum.nets import SmallCNN


class Linear1(nn.Module):
    """f(x) = <w, x>: the attack maximising f has a closed form."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        return (x.flatten(1) * self.w.flatten()).sum(1)


def _value(out, _target):
    return out


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return SmallCNN(num_classes=10, in_channels=3)


def _batch(n=6):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("norm,start", [("linf", "uniform"), ("linf", None), ("l2", "sphere"), ("l2", "ball"),
                                        ("l2", "normal")])
def test_stays_in_ball_and_box(cnn, norm, start):
    x, y = _batch()
    eps = torch.tensor([0.0, 0.01, 0.03, 0.1, 0.5, 1.0]) if norm == "l2" else torch.tensor([0, 1, 2, 4, 8, 16]) / 255
    x_adv = pgd(cnn, x, y, eps=eps, step_size=eps / 2 + 1e-3, steps=5, norm=norm, random_start=start)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all(), (size, eps)
    assert size[0] == 0  # eps = 0 leaves the sample alone
    assert (size[1:] > 0).all()


def test_l2_step_has_requested_length(cnn):
    x, y = _batch()
    steps = torch.tensor([0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
    x_adv = pgd(cnn, x, y, eps=math.inf, step_size=steps, steps=1, norm="l2", clamp=None)
    assert torch.allclose((x_adv - x).flatten(1).norm(dim=1), steps, rtol=1e-4)
    x_adv = pgd(cnn, x, y, eps=math.inf, step_size=0.01, steps=1, norm="linf", clamp=None)
    assert torch.allclose((x_adv - x).abs(), torch.full_like(x, 0.01), atol=1e-7)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("targeted", [False, True])
def test_fused_steps_equal_the_textbook_projected_steps(cnn, norm, targeted):
    """x <- clamp(x0 + Proj(x ± a s(grad) - x0), 0, 1), written out step by step (Madry et al. Eq. 2.1)."""
    x, y = _batch()
    view = (-1, 1, 1, 1)
    eps, alpha = torch.tensor([0.0, 0.01, 0.05, 0.1, 0.5, 2.0]).view(view), 0.3
    sign = -1.0 if targeted else 1.0
    expected = x.clone()
    cnn.eval()
    for _ in range(3):
        expected.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(cnn(expected), y, reduction="none").sum(), expected)
        moved = expected.detach() + sign * alpha * normalized_step(grad, norm)
        expected = (x + project(moved - x, eps, norm)).clamp(0, 1)
    got = pgd(cnn, x, y, eps=eps.flatten(), step_size=alpha, steps=3, norm=norm, targeted=targeted)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.equal(got, x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_one_sided_box(norm):
    """clamp=(low, None) bounds only from below: a linear score pushes every pixel up past 1."""
    model = Linear1(torch.ones(1, 3, 4, 4))
    x = torch.full((2, 3, 4, 4), 0.99)
    x_adv = pgd(model, x, None, eps=1.0, step_size=0.5, steps=3, norm=norm, loss_fn=_value, clamp=(0.0, None))
    assert x_adv.max() > 1.0 and x_adv.min() >= 0.0
    x_adv = pgd(model, x, None, eps=1.0, step_size=0.5, steps=3, norm=norm, loss_fn=_value, clamp=(None, 1.0),
                targeted=True)
    assert x_adv.min() < 0.9 and x_adv.max() <= 1.0


def test_linear_model_closed_forms():
    torch.manual_seed(0)
    w = torch.randn(1, 3, 4, 4)
    model = Linear1(w)
    x = torch.full((2, 3, 4, 4), 0.5)
    eps = 0.1
    x_inf = pgd(model, x, None, eps=eps, step_size=eps / 4, steps=10, loss_fn=_value, random_start="uniform")
    assert torch.allclose(x_inf, x + eps * w.sign(), atol=1e-6)
    x_l2 = pgd(model, x, None, eps=eps, step_size=eps / 4, steps=10, norm="l2", loss_fn=_value)
    assert torch.allclose(x_l2, x + eps * w / w.norm(), atol=1e-6)
    # from a random point on the sphere, projected steps converge to the same answer
    x_l2 = pgd(model, x, None, eps=eps, step_size=eps, steps=40, norm="l2", loss_fn=_value, random_start="sphere")
    assert torch.allclose(x_l2, x + eps * w / w.norm(), atol=1e-5)
    # targeted descends: the minimiser is the opposite corner
    x_min = pgd(model, x, None, eps=eps, step_size=eps / 4, steps=10, loss_fn=_value, targeted=True)
    assert torch.allclose(x_min, x - eps * w.sign(), atol=1e-6)


def test_targeted_reaches_target():
    torch.manual_seed(0)
    model = nn.Linear(20, 5)
    x = torch.rand(64, 20)
    target = torch.randint(0, 5, (64,))
    assert (model(x).argmax(1) == target).float().mean() < 0.5
    x_adv = pgd(model, x, target, eps=3.0, step_size=0.2, steps=60, norm="l2", targeted=True, clamp=None)
    assert (model(x_adv).argmax(1) == target).all()
    # untargeted on the same model lowers accuracy w.r.t. the predicted class
    pred = model(x).argmax(1)
    x_unt = pgd(model, x, pred, eps=3.0, step_size=0.2, steps=60, norm="l2", clamp=None)
    assert (model(x_unt).argmax(1) != pred).all()


def test_untargeted_raises_loss(cnn):
    x, y = _batch()
    cnn.eval()
    x_adv = pgd(cnn, x, y, eps=8 / 255, step_size=2 / 255, steps=5, random_start="uniform")
    with torch.no_grad():
        assert F.cross_entropy(cnn(x_adv), y) > F.cross_entropy(cnn(x), y)


def test_keep_best_matches_brute_force(cnn):
    x, y = _batch()
    cnn.eval()
    kw = dict(eps=0.5, step_size=0.4, norm="l2")  # big steps oscillate, so the last iterate is not always best
    with torch.no_grad():
        iterates = [pgd(cnn, x, y, steps=k, **kw) for k in range(5)]
        losses = torch.stack([F.cross_entropy(cnn(it), y, reduction="none") for it in iterates])
        best = pgd(cnn, x, y, steps=4, keep_best=True, **kw)
        best_loss = F.cross_entropy(cnn(best), y, reduction="none")
    assert torch.allclose(best_loss, losses.max(0).values, atol=1e-5)
    assert (best_loss >= losses[-1] - 1e-6).all()


def test_model_untouched_and_mode_restored(cnn):
    x, y = _batch()
    cnn.train()
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    pgd(cnn, x, y, eps=8 / 255, step_size=2 / 255, steps=3, random_start="uniform")
    assert cnn.training
    assert all(p.grad is None for p in cnn.parameters())
    for k, v in cnn.state_dict().items():  # eval mode inside: BatchNorm statistics unchanged
        assert torch.equal(v, before[k]), k
    cnn.eval()
    for p in cnn.parameters():
        p.grad = torch.ones_like(p)
    pgd(cnn, x, y, eps=8 / 255, step_size=2 / 255, steps=3)
    assert not cnn.training
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in cnn.parameters())


def test_works_under_inference_mode(cnn):
    x, y = _batch()
    cnn.eval()
    clean = pgd(cnn, x, y, eps=8 / 255, step_size=2 / 255, steps=3)
    with torch.inference_mode():
        xi, yi, probs = x.clone(), y.clone(), cnn(x).softmax(1)
        inside = pgd(cnn, xi, yi, eps=8 / 255, step_size=2 / 255, steps=3)
        # a KL against clean probabilities made under inference mode (CAAT's use)
        kl = pgd(cnn, xi, probs, eps=8 / 255, step_size=2 / 255, steps=2, random_start="normal",
                 loss_fn=lambda out, p: F.kl_div(out.log_softmax(1), p, reduction="none").sum(1))
    assert torch.allclose(clean, inside)
    assert not kl.is_inference() and (kl - x).abs().max() > 0


def test_bad_arguments(cnn):
    x, y = _batch()
    with pytest.raises(ValueError, match="norm: "):
        pgd(cnn, x, y, eps=0.1, step_size=0.1, steps=1, norm="l1")
    with pytest.raises(ValueError, match="random_start"):
        pgd(cnn, x, y, eps=0.1, step_size=0.1, steps=1, norm="l2", random_start="uniform")
    with pytest.raises(ValueError, match="per-sample loss"):
        pgd(cnn, x, y, eps=0.1, step_size=0.1, steps=1, loss_fn=F.cross_entropy)
    with pytest.raises(ValueError, match="eps: "):
        pgd(cnn, x, y, eps=torch.ones(3), step_size=0.1, steps=1)


class Confident(nn.Module):
    """A linear classifier with a large logit margin (~20): in float16 the input gradient of its
    cross-entropy underflows to exactly zero for most samples."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 10)
        with torch.no_grad():
            self.fc.weight.mul_(40)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _confident_batch():
    model = Confident()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def test_attack_runs_in_full_precision_under_fp16_autocast():
    model, x, y = _confident_batch()
    kw = dict(eps=0.5, step_size=0.1, steps=5, norm="l2")
    reference = pgd(model, x, y, **kw)
    with torch.autocast("cpu", dtype=torch.float16):
        with torch.enable_grad():  # what the attack would see without its own precision guard
            x_req = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="none").sum(), x_req)
        inside = pgd(model, x, y, **kw)
    assert (g.flatten(1).abs().amax(1) == 0).float().mean() > 0.3  # the failure being guarded against
    assert inside.dtype == x.dtype
    assert torch.equal(inside, reference)
    assert ((inside - x).flatten(1).norm(dim=1) > 0.4).all()  # every sample moved (gradients are not zero)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])  # on CPU Lightning runs 16-mixed as bf16-mixed
def test_attack_inside_a_mixed_precision_lightning_step_equals_the_float32_attack(precision):
    import lightning as L

    model, x, y = _confident_batch()
    kw = dict(eps=0.5, step_size=0.1, steps=5, norm="l2")
    reference = pgd(model, x, y, **kw)

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            assert torch.is_autocast_enabled("cpu")  # the step runs under the trainer's autocast
            self.x_adv = pgd(self.model, xb, yb, **kw)
            return self.model(self.x_adv).float().mean() * 0

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    probe = Probe()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=len(y))
    L.Trainer(accelerator="cpu", precision=precision, max_steps=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(probe, loader)
    assert torch.equal(probe.x_adv, reference)
