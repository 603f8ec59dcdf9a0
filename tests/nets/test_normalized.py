import torch

from zerosum.attacks import pgd
from zerosum.nets import Normalized, SmallCNN


def test_normalized_forwards_and_features():
    torch.manual_seed(0)
    net = SmallCNN(num_classes=10, in_channels=3).eval()
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    wrapped = Normalized(net, mean, std).eval()
    x = torch.rand(2, 3, 32, 32)
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(wrapped(x), net(xn), atol=1e-6)
    assert torch.allclose(wrapped.features(x), net.features(xn), atol=1e-6)
    assert wrapped.feature_dim == net.feature_dim and wrapped.head is net.head
    # eps is measured in pixels: the attack on the wrapper stays in the [0, 1] box
    x_adv = pgd(wrapped, x, torch.zeros(2, dtype=torch.long), eps=8 / 255, step_size=2 / 255, steps=2)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
