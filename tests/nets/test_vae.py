import pytest
import torch

from zerosum.nets import BetaVAE


@pytest.mark.parametrize("channels, size, blocks", [(3, 32, 4), (1, 8, 2), (3, 64, 4)])
def test_shapes_and_paper_widths(channels, size, blocks):
    vae = BetaVAE(channels, size, latent_dim=6, base_width=4, num_blocks=blocks)
    out = vae(torch.randn(3, channels, size, size))
    assert out.recon.shape == (3, channels, size, size)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (3, 6)
    convs = [m for m in vae.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4 * 2 ** i for i in range(blocks)]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)


def test_paper_default_is_128_to_1024():
    vae = BetaVAE(3, 32, latent_dim=32)
    assert [m.out_channels for m in vae.encoder if isinstance(m, torch.nn.Conv2d)] == [128, 256, 512, 1024]


def test_eval_mode_decodes_the_mean_and_training_samples():
    torch.manual_seed(0)
    vae = BetaVAE(1, 8, latent_dim=4, base_width=4, num_blocks=2)
    x = torch.randn(5, 1, 8, 8)
    vae.train()
    out = vae(x)
    assert not torch.allclose(out.z, out.mu)
    vae.eval()
    out = vae(x)
    assert torch.equal(out.z, out.mu)


def test_logvar_is_clamped_so_kl_stays_finite():
    vae = BetaVAE(1, 8, latent_dim=4, base_width=4, num_blocks=2, logvar_limit=10.0)
    with torch.no_grad():
        vae.fc_logvar.bias.fill_(1e4)  # an exploded encoder: exp(logvar) would overflow to inf
    mu, logvar = vae.encode(torch.randn(2, 1, 8, 8))
    assert logvar.max() <= 10.0 and torch.isfinite(logvar.exp()).all()


def test_bad_sizes_name_the_option():
    with pytest.raises(ValueError, match="image_size=8.*num_blocks"):
        BetaVAE(1, 8, num_blocks=4)
    with pytest.raises(ValueError, match="base_width"):
        BetaVAE(1, 32, base_width=0)
