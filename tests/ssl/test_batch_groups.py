import copy

import pytest
import torch
from torch import nn

from zerosum.ssl import batch_norm_per_group


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 6), nn.BatchNorm1d(6))


def test_groups_are_normalised_as_separate_calls_with_the_same_running_statistics():
    a, b = net().train(), net().train()
    parts = [torch.randn(8, 3, 5, 5) * (k + 1) + k for k in range(3)]  # groups with different statistics
    order = [0, 1, 0, 2]  # the reference loop's calls: clean, masked 1, clean, masked 2
    with batch_norm_per_group([a], 3, order):
        out = a(torch.cat(parts))
    ref = [b(parts[g]) for g in order]
    expected = torch.cat([ref[0], ref[1], ref[3]])
    assert torch.allclose(out, expected, atol=1e-5)
    for (name, x), y in zip(a.named_buffers(), b.buffers()):
        assert torch.allclose(x.float(), y.float(), atol=1e-6), name
    pooled = net().train()(torch.cat(parts))  # what one plain batched call gives instead
    assert not torch.allclose(pooled, expected, atol=1e-2)


def test_leaves_eval_mode_and_the_layers_alone():
    a = net()
    x = torch.randn(6, 3, 5, 5)
    a.eval()
    plain = a(x)
    with batch_norm_per_group([a], 3):
        assert torch.equal(a(x), plain)
    a.train()
    with batch_norm_per_group([a], 2):
        pass
    assert "forward" not in a[1].__dict__  # restored
    with pytest.raises(ValueError, match="groups"):
        with batch_norm_per_group([a], 4):
            a(x)
    with pytest.raises(ValueError, match="running_order"):
        with batch_norm_per_group([a], 2, [0, 0]):
            pass


def test_gradients_equal_those_of_separate_calls():
    a = net().train()
    b = copy.deepcopy(a)
    parts = [torch.randn(4, 3, 5, 5, requires_grad=True) for _ in range(2)]
    with batch_norm_per_group([a], 2):
        out = a(torch.cat(parts))
    ga = torch.autograd.grad(out.pow(2).sum(), list(a.parameters()))
    gb = torch.autograd.grad(sum(b(p).pow(2).sum() for p in parts), list(b.parameters()))
    assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(ga, gb))
