import math

import torch

from zerosum.modules.caat_features import sample_features


def test_features_match_their_definitions():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([1, 2])
    class_loss, prior = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.3, 0.2])
    z = sample_features(logits, y, class_loss, prior)
    p = logits.softmax(1)
    assert z.shape == (2, 6)
    assert torch.allclose(z[:, 0], -p[[0, 1], y].log())
    assert torch.allclose(z[:, 1], torch.tensor([0.2, 0.3]))
    assert torch.allclose(z[0, 2], (torch.tensor([0.0, 1.0, 0.0]) - p[0]).norm())
    assert torch.isclose(z[0, 3], p[0, 1] - p[0, 0])  # negative margin: misclassified
    assert torch.isclose(z[1, 3], torch.tensor(0.0), atol=1e-6)
    assert torch.isclose(z[1, 4], torch.tensor(-math.log(3)))  # negative entropy of the uniform
    assert torch.allclose(z[:, 5], torch.tensor([0.3, 0.2]))
