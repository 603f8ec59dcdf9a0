import pytest
import torch
from torch.distributions import Normal, kl_divergence

from zerosum.losses import BetaVAELoss
from zerosum.losses.vae_loss import kl_to_standard_normal
from zerosum.nets import BetaVAE


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(7, 5), torch.randn(7, 5)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).mean()
    assert torch.allclose(kl_to_standard_normal(mu, logvar), expected, atol=1e-5)
    assert kl_to_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4)).abs() < 1e-7  # q = prior


def test_summed_kl_is_the_official_sum_over_batch_and_latent_dimensions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(7, 5), torch.randn(7, 5)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum()
    assert torch.allclose(kl_to_standard_normal(mu, logvar, "sum"), expected, atol=1e-4)
    assert torch.allclose(kl_to_standard_normal(mu, logvar, "sum"), 35 * kl_to_standard_normal(mu, logvar, "mean"))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_beta_weights_the_kl(reduction):
    torch.manual_seed(0)
    x, recon, mu, logvar = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.randn(4, 3), torch.randn(4, 3)
    l0, l1, l2 = (BetaVAELoss(b, kl_reduction=reduction)(recon, x, mu, logvar) for b in (0.0, 1.0, 2.0))
    assert torch.allclose(l2 - l1, l1 - l0) and torch.allclose(l1 - l0, kl_to_standard_normal(mu, logvar, reduction))
    assert torch.allclose(l0, torch.nn.functional.mse_loss(recon, x))  # the MSE is a mean either way (official)


def test_bad_reduction_is_refused():
    with pytest.raises(ValueError, match="kl_reduction: .*allowed: sum, mean"):
        BetaVAELoss(kl_reduction="batchmean")


def test_vae_loss_falls_on_a_fixed_batch_and_stays_finite():
    torch.manual_seed(0)
    vae = BetaVAE(1, 8, latent_dim=4, base_width=8, num_blocks=2)
    loss_fn = BetaVAELoss(beta=1.0)
    x = torch.rand(16, 1, 8, 8)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = vae(x)
        loss = loss_fn(out.recon, x, out.mu, out.logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
