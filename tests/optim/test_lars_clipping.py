import torch

from zerosum.optim import LARS


def one_step(w0: torch.Tensor, g: torch.Tensor, lr: float, clip: bool) -> torch.Tensor:
    w = torch.nn.Parameter(w0.clone())
    w.grad = g.clone()
    LARS([w], lr=lr, momentum=0.0, eta=0.02, clip_lr=clip).step()
    return w0 - w.detach()  # the step taken


def test_clipping_caps_the_layer_step_at_the_learning_rate_as_solo_learn():
    w0, g = torch.full((4, 4), 1.0), torch.full((4, 4), 0.01)  # ||w|| / ||g|| = 100: trust 0.02 * 100 = 2
    assert torch.allclose(one_step(w0, g, lr=0.1, clip=False), 0.1 * 2.0 * g)  # lr * trust
    assert torch.allclose(one_step(w0, g, lr=0.1, clip=True), 0.1 * g)  # min(trust, lr) = lr
    small = torch.full((4, 4), 1.0)  # ||w|| / ||g|| = 1: trust 0.02 < lr
    assert torch.allclose(one_step(w0, small, lr=0.1, clip=True), 0.02 * small)  # min(trust, lr) = trust
