"""The weights a round ends with: BatchNorm statistics re-estimated exactly; best-on-validation copies."""

import torch
from torch import nn

from zerosum.callbacks.round_weights import BestOnValidation, recalibrate_batchnorm


def test_recalibrate_batchnorm_gives_the_exact_statistics_of_the_loader():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    net[1].running_mean.fill_(7.0)  # stale statistics, as after a few steps
    x = torch.randn(40, 3) * 3 + 1
    loader = [(x[i:i + 8], None) for i in range(0, 40, 8)]
    assert recalibrate_batchnorm(net, loader) == 1
    h = net[0](x).detach()
    assert torch.allclose(net[1].running_mean, h.mean(0), atol=1e-5)
    # the running variance is the mean of the per-batch unbiased variances (what BatchNorm accumulates)
    per_batch = torch.stack([h[i:i + 8].var(0, unbiased=True) for i in range(0, 40, 8)])
    assert torch.allclose(net[1].running_var, per_batch.mean(0), atol=1e-4)
    assert net.training and net[1].momentum == 0.1  # modes and momentum restored
    assert recalibrate_batchnorm(nn.Linear(2, 2), loader) == 0


def test_best_on_validation_keeps_the_first_best_and_restores_only_named_children():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    best = BestOnValidation(networks=["1"])
    assert best.update(0, 0.5, 10, net)
    kept = net[1].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].weight.add_(1.0)
    assert not best.update(0, 0.5, 20, net)  # a tie keeps the earlier weights
    best.restore(net)
    assert torch.equal(net[1].weight, kept) and best.step == 10 and set(best.weights) == {"1.weight", "1.bias"}
    assert best.update(1, 0.1, 5, net) and best.round == 1 and best.acc == 0.1  # a new round starts over
