import math

import pytest
import torch

from zerosum.theory.gaussian import (
    DTYPE,
    condition_number,
    gradient_alignment,
    l2_adversary,
    lagrangian_adversary,
    nll,
    robust_mle,
    sample,
    standard_mle,
    theorem1_gap,
    theorem2_sigma,
    worst_case_alignment,
)

MU = torch.tensor([1.0, 0.5], dtype=DTYPE)
SIGMA = torch.tensor([[1.0, 0.3], [0.3, 0.2]], dtype=DTYPE)  # condition number ~ 11: non-robust direction


@pytest.fixture(scope="module")
def data():
    return sample(600, MU, SIGMA, torch.Generator().manual_seed(0))


def quad(x, y, mu, sigma):
    v = x - y[:, None] * mu
    return (v * torch.linalg.solve(sigma, v.T).T).sum(1)


def test_standard_mle_by_gradient_descent(data):
    x, y = data
    mu, sigma = standard_mle(x, y)
    init = (torch.tensor([0.2, -0.1], dtype=DTYPE), torch.eye(2, dtype=DTYPE))
    fit = robust_mle(x, y, eps=0.0, steps=600, lr=0.02, init=init)
    assert torch.allclose(fit.mu, mu, atol=1e-6) and torch.allclose(fit.sigma, sigma, atol=1e-6)
    assert fit.losses[-1] <= fit.losses[0]
    assert (torch.sign(x @ torch.linalg.solve(sigma, mu)) == y).float().mean() > 0.8  # Eq. 12 classifies


def test_lagrangian_adversary_is_the_maximiser(data):
    x, y = data
    mu, sigma = standard_mle(x, y)
    C = 12.0
    delta = lagrangian_adversary(x, y, mu, sigma, C).requires_grad_(True)
    objective = nll(x + delta, y, mu, sigma) - C / 2 * (delta ** 2).sum(1)
    (grad,) = torch.autograd.grad(objective.sum(), delta)
    assert grad.abs().max() < 1e-9  # stationary ...
    with torch.no_grad():  # ... and a maximum
        for _ in range(20):
            d2 = delta + 0.05 * torch.randn_like(delta)
            assert ((nll(x + d2, y, mu, sigma) - C / 2 * (d2 ** 2).sum(1)) <= objective + 1e-12).all()
    with pytest.raises(ValueError, match="C=0.5 too small"):
        lagrangian_adversary(x, y, mu, sigma, 0.5)


def test_theorem1_gap_exact_on_the_mle(data):
    """At Θ = the MLE of the sample, the empirical gap equals Eq. (15) with Σ* = that MLE exactly."""
    x, y = data
    mu, sigma = standard_mle(x, y)
    for C in (15.0, 30.0, 100.0):
        delta = lagrangian_adversary(x, y, mu, sigma, C)
        gap = (quad(x + delta, y, mu, sigma) - quad(x, y, mu, sigma)).mean()
        assert gap == pytest.approx(theorem1_gap(sigma, C).item(), rel=1e-9)
    # ... and against the population Σ* by Monte Carlo
    xb, yb = sample(200_000, MU, SIGMA, torch.Generator().manual_seed(1))
    delta = lagrangian_adversary(xb, yb, MU, SIGMA, 20.0)
    gap = (quad(xb + delta, yb, MU, SIGMA) - quad(xb, yb, MU, SIGMA)).mean()
    assert gap == pytest.approx(theorem1_gap(SIGMA, 20.0).item(), rel=0.02)


def test_theorem1_isotropic_minimises_the_gap():
    g = torch.Generator().manual_seed(2)
    d, k, C = 4, 4.0, 10.0
    iso = theorem1_gap(k / d * torch.eye(d, dtype=DTYPE), C)
    for _ in range(20):
        a = torch.randn(d, d, generator=g, dtype=DTYPE)
        s = a @ a.T + 0.5 * torch.eye(d, dtype=DTYPE)
        s = s * k / torch.trace(s)
        if torch.linalg.eigvalsh(s).min() * C > 1:
            assert theorem1_gap(s, C) >= iso - 1e-12


def test_l2_adversary_exact(data):
    x, y = data[0][:50], data[1][:50]
    mu, sigma = standard_mle(*data)
    eps = 0.3
    delta, lam = l2_adversary(x, y, mu, sigma, eps)
    assert torch.allclose(delta.norm(dim=1), torch.full((50,), eps, dtype=DTYPE), atol=1e-10)
    v = x + delta - y[:, None] * mu  # KKT: Σ^{-1}(v + δ) = λ δ
    assert torch.allclose(torch.linalg.solve(sigma, v.T).T, lam[:, None] * delta, atol=1e-8)
    best = nll(x + delta, y, mu, sigma)
    angles = torch.linspace(0, 2 * math.pi, 2000, dtype=DTYPE)
    ring = eps * torch.stack([angles.cos(), angles.sin()], 1)  # brute force over the circle
    for i in range(5):
        values = nll(x[i] + ring, y[i].expand(len(ring)), mu, sigma)
        assert values.max() <= best[i] + 1e-9 and values.max() >= best[i] - 1e-4


def test_theorem2_robust_covariance_closed_form(data):
    """Adversarial training against the Lagrangian adversary (constant multiplier λ = C) lands on
    Theorem 2's Σ_r, with μ_r = μ*."""
    x, y = data
    mu, sigma = standard_mle(x, y)
    for lam in (3.0, 10.0):
        fit = robust_mle(x, y, C=lam, steps=600, lr=0.02)
        assert torch.allclose(fit.mu, mu, atol=1e-8)
        assert torch.allclose(fit.sigma, theorem2_sigma(sigma, lam), atol=1e-8)


def test_l2_robust_mle_blends_toward_identity_and_aligns_gradients(data):
    x, y = data
    mu, sigma = standard_mle(x, y)
    kappas, aligned = [condition_number(sigma)], [worst_case_alignment(sigma)]
    for eps in (0.25, 1.0):
        fit = robust_mle(x, y, eps=eps, steps=300, lr=0.03)
        assert torch.allclose(fit.mu, mu, atol=0.02)  # the mean is (nearly) unchanged
        # Theorem 2 with the per-sample multipliers' range brackets the learned spectrum
        lo = torch.linalg.eigvalsh(theorem2_sigma(sigma, fit.lam.max().item()))
        hi = torch.linalg.eigvalsh(theorem2_sigma(sigma, fit.lam.min().item()))
        s = torch.linalg.eigvalsh(fit.sigma)
        assert (lo <= s + 1e-9).all() and (s <= hi + 1e-9).all(), (lo, s, hi)
        kappas.append(condition_number(fit.sigma))
        aligned.append(worst_case_alignment(fit.sigma))
        assert gradient_alignment(fit.mu, fit.sigma) > gradient_alignment(mu, sigma)
    assert kappas[0] > kappas[1] > kappas[2]  # covariance blends toward the identity as eps grows
    assert aligned[0] < aligned[1] < aligned[2]  # Theorem 3


def test_worst_case_alignment_brute_force():
    sigma = torch.tensor([[2.0, 0.4], [0.4, 0.3]], dtype=DTYPE)
    angles = torch.linspace(0, math.pi, 20001, dtype=DTYPE)
    cos = torch.stack([gradient_alignment(torch.stack([a.cos(), a.sin()]), sigma) for a in angles[::10]])
    assert cos.min() >= worst_case_alignment(sigma) - 1e-12
    assert cos.min() == pytest.approx(worst_case_alignment(sigma).item(), abs=1e-4)


def test_figure4_script_writes_png(tmp_path):
    from zerosum.theory.plot_gaussian import figure4

    out = tmp_path / "fig4.png"
    result = figure4(str(out), eps_values=(0.0, 0.5), n=200, steps=60)
    assert out.stat().st_size > 10_000
    assert result["condition_number"][1] < result["condition_number"][0]
    assert result["alignment"][1] > result["alignment"][0]
