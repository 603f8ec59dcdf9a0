"""SimCLR's NT-Xent on 2 CPU processes (gloo) with negatives gathered across ranks equals the
single-process loss on the same global batch, in value and in gradient (after DDP's mean)."""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers.adios import nt_xent_rank
from zerosum.losses import NTXentLoss


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathered_loss_and_gradient_equal_the_global_batch_on_one_process(tmp_path):
    torch.manual_seed(0)
    x1, x2 = torch.randn(12, 5), torch.randn(12, 5)
    w = torch.randn(5, 4)
    single_w = torch.nn.Parameter(w.clone())
    single = NTXentLoss(0.5)(x1 @ single_w, x2 @ single_w)
    single.backward()
    mp.spawn(nt_xent_rank, args=(2, free_port(), x1, x2, w, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert torch.equal(ranks[0][True]["grad"], ranks[1][True]["grad"])
    ddp, local = ranks[0][True], ranks[0][False]
    assert torch.allclose(ddp["loss"], single.detach(), atol=1e-6)
    assert torch.allclose(ddp["grad"], single_w.grad, atol=1e-6)
    assert not torch.allclose(local["loss"], single.detach(), atol=1e-3)  # control: own negatives only


@pytest.mark.parametrize("gather", [True, False])
def test_single_process_ignores_gather(gather):
    z1, z2 = torch.randn(6, 3), torch.randn(6, 3)
    assert torch.equal(NTXentLoss(0.2, gather=gather)(z1, z2), NTXentLoss(0.2, gather=False)(z1, z2))
