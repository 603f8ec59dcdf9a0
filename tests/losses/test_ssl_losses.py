import math

import torch

from zerosum.losses import BYOLLoss, MaskSparsityPenalty, NTXentLoss, SimSiamLoss


def test_nt_xent_matches_hand_computation():
    torch.manual_seed(0)
    z1, z2, t = torch.randn(3, 4), torch.randn(3, 4), 0.5
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    total = 0.0
    for i in range(6):
        pos = (i + 3) % 6
        num = math.exp(float(z[i] @ z[pos]) / t)
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(6) if k != i)
        total += -math.log(num / den)
    assert abs(NTXentLoss(t)(z1, z2).item() - total / 6) < 1e-5


def test_nt_xent_is_low_for_aligned_pairs_and_rejects_bad_shapes():
    z = torch.eye(4)
    assert NTXentLoss(0.1)(z, z) < NTXentLoss(0.1)(z, z.roll(1, 0))
    try:
        NTXentLoss()(torch.zeros(2, 3), torch.zeros(3, 3))
    except ValueError as err:
        assert "equal shape" in str(err)
    else:
        raise AssertionError("mismatched shapes accepted")


def test_byol_and_simsiam_match_hand_computation_and_stop_gradient():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    z = torch.tensor([[0.0, 2.0], [2.0, 2.0]], requires_grad=True)
    # cosines: 0 and 1
    assert abs(BYOLLoss()(p, z).item() - ((2 - 0) + (2 - 2)) / 2) < 1e-6
    loss = SimSiamLoss()(p, z)
    assert abs(loss.item() - (-(0 + 1) / 2)) < 1e-6
    loss.backward()
    assert z.grad is None and p.grad is not None  # stop-gradient on the target


def test_sparsity_penalty_shape_of_the_barrier():
    pen = MaskSparsityPenalty(alpha=2.0)
    half = torch.full((5, 3, 4, 4), 0.5)
    assert abs(pen(half).item() - 2.0 * 3) < 1e-5  # alpha * N at half coverage: the minimum
    near_empty = torch.full((5, 3, 4, 4), 1e-4)
    near_full = torch.full((5, 3, 4, 4), 1 - 1e-4)
    assert pen(near_empty).item() > 1000 * pen(half).item()
    assert pen(near_full).item() > 1000 * pen(half).item()
    assert torch.isfinite(pen(torch.zeros(1, 1, 2, 2)))  # epsilon keeps an empty mask finite
