import torch

from zerosum.metrics import ClassRobustnessErrors


def test_per_class_errors_match_a_brute_force_count():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (200,), generator=g)
    clean = torch.where(torch.rand(200, generator=g) < 0.7, y, torch.randint(0, 4, (200,), generator=g))
    adv = torch.where(torch.rand(200, generator=g) < 0.5, clean, torch.randint(0, 4, (200,), generator=g))
    metric = ClassRobustnessErrors(4)
    metric.update(clean[:90], adv[:90], y[:90])
    metric.update(clean[90:], adv[90:], y[90:])
    out = metric.compute()
    for c in range(4):
        m = y == c
        nat = (clean[m] != c).float().mean()
        rob = (adv[m] != c).float().mean()
        bdy = ((clean[m] == c) & (adv[m] != c)).float().mean()
        assert torch.isclose(out["natural"][c], nat) and torch.isclose(out["robust"][c], rob)
        assert torch.isclose(out["boundary"][c], bdy)
    assert torch.isclose(out["robust_worst"], out["robust"].max())
    assert torch.isclose(out["natural_avg"], out["natural"].mean())
