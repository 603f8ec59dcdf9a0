import pytest
import torch

from zerosum.nets import LatentDiscriminator


@pytest.mark.parametrize("layers", [1, 3, 5])
def test_depth_counts_linear_layers_and_output_is_a_probability(layers):
    d = LatentDiscriminator(latent_dim=6, hidden_dim=16, num_layers=layers)
    linears = [m for m in d.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == layers and linears[-1].out_features == 1
    z = 50 * torch.randn(9, 6)
    p = d(z)
    assert p.shape == (9,) and ((p >= 0) & (p <= 1)).all()
    assert torch.allclose(p, torch.sigmoid(d.logits(z)))


def test_paper_default_is_five_layers():
    assert len([m for m in LatentDiscriminator(32).modules() if isinstance(m, torch.nn.Linear)]) == 5


def test_bad_depth_is_refused():
    with pytest.raises(ValueError, match="num_layers"):
        LatentDiscriminator(4, num_layers=0)
