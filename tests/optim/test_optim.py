import math

import pytest
import torch

from zerosum.optim import LARS, LinearWarmupCosineLR


def test_lars_step_is_trust_ratio_times_lr_per_layer():
    w = torch.nn.Parameter(torch.randn(4, 3))
    b = torch.nn.Parameter(torch.randn(4))
    w0, b0 = w.detach().clone(), b.detach().clone()
    w.grad, b.grad = 100 * torch.randn(4, 3), torch.randn(4)
    gw, gb = w.grad.clone(), b.grad.clone()
    LARS([w, b], lr=0.5, momentum=0.0, eta=0.01).step()
    # weight: the step's norm is lr * eta * ||w||, whatever the gradient's scale
    assert abs((w0 - w.detach()).norm().item() - 0.5 * 0.01 * w0.norm().item()) < 1e-5
    assert torch.allclose(w0 - w.detach(), 0.5 * 0.01 * w0.norm() / gw.norm() * gw, atol=1e-6)
    # bias: excluded, plain SGD
    assert torch.allclose(b.detach(), b0 - 0.5 * gb, atol=1e-6)


def test_lars_minimises_a_quadratic():
    torch.manual_seed(0)
    target = torch.randn(10, 10)
    w = torch.nn.Parameter(torch.randn(10, 10))
    opt = LARS([w], lr=1.0, momentum=0.9, eta=0.02)
    before = (w - target).pow(2).sum().item()
    for _ in range(200):
        opt.zero_grad()
        (w - target).pow(2).sum().backward()
        opt.step()
    assert (w - target).pow(2).sum().item() < 0.05 * before


def test_lars_rejects_bad_options():
    with pytest.raises(ValueError, match="momentum"):
        LARS([torch.nn.Parameter(torch.zeros(1))], momentum=1.5)


def test_warmup_cosine_schedule_per_group():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 0.1}])
    sched = LinearWarmupCosineLR(opt, warmup_steps=4, total_steps=14, eta_min=0.0)
    lrs = []
    for _ in range(16):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert lrs[0] == [0.0, 0.0]
    assert abs(lrs[2][0] - 0.5) < 1e-9  # linear warm-up
    assert abs(lrs[4][0] - 1.0) < 1e-9 and abs(lrs[4][1] - 0.1) < 1e-9
    assert abs(lrs[9][0] - 0.5 * (1 + math.cos(math.pi * 5 / 10))) < 1e-9  # cosine midpoint
    after = [lr[0] for lr in lrs[4:15]]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert abs(lrs[15][0]) < 1e-9  # stays at eta_min after the end
