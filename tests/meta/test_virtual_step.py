import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from zerosum.meta import copied_buffers, functional_forward, virtual_sgd_step
from zerosum.nets import SmallCNN


def _model():
    torch.manual_seed(0)
    return SmallCNN(num_classes=3, in_channels=1, width=4)


def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


@pytest.mark.parametrize("momentum,dampening,nesterov,weight_decay,lr",
                         [(0.9, 0.0, False, 5e-4, 0.1), (0.9, 0.0, True, 1e-2, 0.05), (0.5, 0.3, False, 0.0, 0.2),
                          (0.0, 0.0, False, 5e-4, 0.1)])
def test_virtual_step_equals_real_sgd_step_on_a_copy(momentum, dampening, nesterov, weight_decay, lr):
    model = _model()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                          weight_decay=weight_decay)
    for _ in range(2):  # build non-trivial momentum buffers first
        opt.zero_grad()
        _loss(model, torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))).backward()
        opt.step()

    params = dict(model.named_parameters())
    grads = torch.autograd.grad(_loss(model, x, y), list(params.values()))
    virtual = virtual_sgd_step(params, grads, opt)

    twin = copy.deepcopy(model)
    twin_opt = torch.optim.SGD(twin.parameters(), **{k: v for k, v in opt.param_groups[0].items() if k != "params"})
    twin_opt.load_state_dict(opt.state_dict())
    twin_opt.zero_grad()
    _loss(twin, x, y).backward()
    twin_opt.step()
    for name, p in twin.named_parameters():
        assert torch.allclose(virtual[name], p, atol=1e-6, rtol=1e-5), name
    # the real model and the optimizer's state are untouched
    for name, p in model.named_parameters():
        assert torch.equal(p, params[name])
        assert not torch.equal(p, twin.state_dict()[name])


def test_virtual_step_is_differentiable_in_the_loss_weights():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 3, (6,))
    w = torch.full((6,), 0.5, requires_grad=True)
    params = dict(model.named_parameters())
    buffers = copied_buffers(model)
    loss = (w * F.cross_entropy(functional_forward(model, params, buffers, x), y, reduction="none")).mean()
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    virtual = virtual_sgd_step(params, grads, opt)
    meta = F.cross_entropy(functional_forward(model, virtual, copied_buffers(model), x), y)
    (g,) = torch.autograd.grad(meta, w)
    assert g.abs().sum() > 0
    # up-weighting the samples that are also the meta batch lowers the meta loss: gradient negative
    assert g.sum() < 0


def test_functional_forward_with_copied_buffers_leaves_batchnorm_statistics_alone():
    model = _model().train()
    before = {k: v.clone() for k, v in model.named_buffers()}
    functional_forward(model, dict(model.named_parameters()), copied_buffers(model), torch.rand(4, 1, 8, 8))
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k


def test_only_sgd_is_supported():
    model = nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(TypeError, match="torch.optim.SGD"):
        virtual_sgd_step(dict(model.named_parameters()), [None, None], opt)
