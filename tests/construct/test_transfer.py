import torch
from torch import nn

from zerosum.attacks import PGD
from zerosum.construct.transfer import transfer_success


def test_transfer_success_rate():
    torch.manual_seed(0)
    source = nn.Linear(10, 3)
    same_features = nn.Linear(10, 3)
    same_features.load_state_dict(source.state_dict())
    with torch.no_grad():
        same_features.weight.mul_(2.0)  # same decision regions up to the bias: fooled like the source
        same_features.bias.mul_(2.0)
    other = nn.Linear(10, 3)
    with torch.no_grad():
        other.weight.copy_(-source.weight)  # opposite non-robust directions
    x = torch.rand(300, 10)
    y = source(x).argmax(1)
    rates = transfer_success(source, {"same": same_features, "other": other}, x, y,
                             PGD("l2", eps=1.0, steps=10, random_start=False))
    assert rates["num_examples"] > 0
    assert rates["same"] == 1.0
    assert rates["other"] < 0.9
