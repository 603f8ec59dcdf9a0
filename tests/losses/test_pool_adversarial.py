import torch

from zerosum.losses import PoolDiscriminatorLoss, VAEAdversarialLoss


def test_eq3_prefers_a_separating_discriminator_and_eq2_prefers_a_fooled_one():
    separating = (torch.full((8,), 4.0), torch.full((8,), -4.0))  # D(L) ~ 1, D(U) ~ 0
    fooled = (torch.full((8,), 4.0), torch.full((8,), 4.0))  # D says "labeled" everywhere
    d_loss, vae_loss = PoolDiscriminatorLoss(), VAEAdversarialLoss()
    assert d_loss(*separating) < 0.1 < d_loss(*fooled)
    assert vae_loss(*fooled) < 0.1 < vae_loss(*separating)


def test_gradient_signs():
    logits_l = torch.zeros(4, requires_grad=True)
    logits_u = torch.zeros(4, requires_grad=True)
    PoolDiscriminatorLoss()(logits_l, logits_u).backward()
    assert (logits_l.grad < 0).all() and (logits_u.grad > 0).all()  # descent: raise D(L), lower D(U)
    logits_u.grad = None
    VAEAdversarialLoss()(logits_l.detach(), logits_u).backward()
    assert (logits_u.grad < 0).all()  # the VAE pushes unlabeled codes towards "labeled"


def test_equals_bce_on_probabilities():
    torch.manual_seed(0)
    a, b = torch.randn(6), torch.randn(6)
    bce = torch.nn.functional.binary_cross_entropy
    pa, pb = torch.sigmoid(a), torch.sigmoid(b)
    assert torch.allclose(PoolDiscriminatorLoss()(a, b), bce(pa, torch.ones(6)) + bce(pb, torch.zeros(6)), atol=1e-6)
    assert torch.allclose(VAEAdversarialLoss()(a, b), bce(pa, torch.ones(6)) + bce(pb, torch.ones(6)), atol=1e-6)
