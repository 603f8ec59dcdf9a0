import pytest
import torch

from zerosum.nets.meta_net import MetaNet


def test_meta_net_outputs_rows_on_the_simplex_and_sharpens_with_low_temperature():
    torch.manual_seed(0)
    z = torch.randn(32, 6)
    warm, cold = MetaNet(temperature=1.0), MetaNet(temperature=0.05)
    cold.load_state_dict(warm.state_dict())
    w_warm, w_cold = warm(z), cold(z)
    assert w_warm.shape == (32, 2)
    assert torch.allclose(w_warm.sum(1), torch.ones(32))
    assert (w_cold.max(1).values >= w_warm.max(1).values - 1e-6).all()


def test_meta_net_gradient_reaches_every_parameter():
    net = MetaNet()
    net(torch.randn(16, 6))[:, 0].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bad_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        MetaNet(temperature=0)
