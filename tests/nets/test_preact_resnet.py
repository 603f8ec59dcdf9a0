import torch
from torch.nn import functional as F

from zerosum.nets import build_net
from zerosum.nets.preact_resnet import PreActBlock


def test_preact_resnet18_is_registered_and_feeds_its_head():
    net = build_net("preact_resnet18", num_classes=10, in_channels=3, width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    assert net(x).shape == (2, 10)
    assert net.feature_dim == 64 and net.features(x).shape == (2, 64)
    assert torch.allclose(net.head(net.features(x)), net(x), atol=1e-6)
    assert sum(isinstance(m, PreActBlock) for m in net.modules()) == 8


def test_preact_resnet_learns_a_fixed_batch():
    torch.manual_seed(0)
    net = build_net("preact_resnet18", num_classes=3, in_channels=1, width=4)
    x, y = torch.rand(12, 1, 16, 16), torch.arange(12) % 3
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    before = F.cross_entropy(net(x), y).item()
    for _ in range(25):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    assert F.cross_entropy(net(x), y).item() < 0.5 * before
