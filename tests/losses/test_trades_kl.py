import pytest
import torch

from zerosum.losses import TradesKL, trades_kl


def test_trades_kl_is_the_kl_from_clean_to_adversarial_predictions():
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    p, q = b.softmax(1), a.softmax(1)
    expected = (p * (p.log() - q.log())).sum(1)
    assert torch.allclose(trades_kl(a, b), expected, atol=1e-6)
    assert torch.allclose(TradesKL(clean_is_prob=True)(a, p), expected, atol=1e-5)
    assert torch.allclose(trades_kl(b, b), torch.zeros(5), atol=1e-6)
    assert trades_kl(a, b, reduction="mean") == pytest.approx(float(expected.mean()), abs=1e-6)


def test_bad_reduction_is_refused():
    with pytest.raises(ValueError, match="reduction"):
        TradesKL(reduction="avg")
