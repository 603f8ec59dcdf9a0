import pytest
import torch

from zerosum.rl import ReplayBuffer


def test_capacity_ring_overwrites_oldest():
    buf = ReplayBuffer(5, (2, 3), 2, warmup=2)
    for i in range(8):
        buf.add(torch.full((2, 3), float(i)), torch.zeros(2), i, torch.zeros(2, 3))
    assert len(buf) == 5
    assert sorted(buf.rewards.tolist()) == [3, 4, 5, 6, 7]
    assert int(buf.position) == 3


def test_sampling_only_after_warmup():
    buf = ReplayBuffer(10, (1,), 1, warmup=4)
    for i in range(3):
        buf.add(torch.zeros(1), torch.zeros(1), i, torch.zeros(1))
        assert not buf.ready
    with pytest.raises(RuntimeError, match="warmup"):
        buf.sample(2)
    buf.add(torch.zeros(1), torch.zeros(1), 3, torch.zeros(1))
    assert buf.ready
    batch = buf.sample(100, torch.Generator().manual_seed(0))
    assert batch["states"].shape == (100, 1) and set(batch["rewards"].tolist()) <= {0, 1, 2, 3}
    assert len(set(batch["rewards"].tolist())) == 4  # never an empty slot


def test_checkpoint_round_trip(tmp_path):
    buf = ReplayBuffer(6, (2, 2), 2, warmup=1)
    for i in range(9):
        buf.add(torch.randn(2, 2), torch.randn(2), i, torch.randn(2, 2))
    torch.save(buf.state_dict(), tmp_path / "buf.pt")
    other = ReplayBuffer(6, (2, 2), 2, warmup=1)
    other.load_state_dict(torch.load(tmp_path / "buf.pt"))
    assert len(other) == 6 and int(other.position) == int(buf.position)
    for k, v in buf.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(buf.sample(8, g1)["states"], other.sample(8, g2)["states"])


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (1,), 1)
    with pytest.raises(ValueError, match="warmup"):
        ReplayBuffer(3, (1,), 1, warmup=5)
