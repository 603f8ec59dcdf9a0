import torch
from torch.nn import functional as F

from zerosum.losses import CoverageNegentropy
from zerosum.masks import coverage, coverage_extremes, derangement, pairwise_correlation


def test_coverage_extremes_are_per_sample_then_averaged():
    masks = torch.zeros(2, 3, 2, 2)
    masks[0, 0] = 1.0  # sample 0: one mask covers everything
    masks[1, :, 0, :] = torch.tensor([0.5, 0.5])  # sample 1: masks 0..2 cover 0.25, 0.25, 0.25
    masks[1, 2, 1, :] = 1.0  # and mask 2 the other half: 0.75
    cov = coverage(masks)
    lo, hi = coverage_extremes(masks)
    brute = [(min(row), max(row)) for row in cov.tolist()]
    assert torch.isclose(lo, torch.tensor(sum(b[0] for b in brute) / 2)) and torch.isclose(hi, torch.tensor(sum(b[1] for b in brute) / 2))
    assert hi.item() == (1.0 + 0.75) / 2  # the batch-mean coverage would report max 0.5 + 0.25 / 2 instead


def test_pairwise_correlation_of_equal_and_complementary_masks():
    left = torch.zeros(1, 1, 4, 4)
    left[..., :2] = 1
    assert torch.isclose(pairwise_correlation(torch.cat([left, left], 1)), torch.tensor(1.0))
    assert torch.isclose(pairwise_correlation(torch.cat([left, 1 - left], 1)), torch.tensor(-1.0))
    assert pairwise_correlation(torch.cat([left, torch.full_like(left, 0.5)], 1)) == 0  # a constant mask


def test_derangement_moves_every_sample():
    perm = derangement(5)
    assert sorted(perm.tolist()) == list(range(5)) and (perm != torch.arange(5)).all()


def test_coverage_negentropy_is_the_official_term_and_its_ascent_spreads_coverage():
    masks = torch.rand(3, 4, 5, 5).softmax(1).requires_grad_()
    cov = masks.mean((-2, -1))
    expected = 0.5 * (F.softmax(cov, 1) * F.log_softmax(cov, 1)).sum()
    term = CoverageNegentropy(0.5)(masks)
    assert torch.isclose(term, expected)
    masks = torch.zeros(1, 2, 10, 10)
    masks[:, 0, :6] = 1.0  # coverages 0.6 and 0.4
    masks[:, 1, 6:] = 1.0
    masks.requires_grad_()
    (g,) = torch.autograd.grad(CoverageNegentropy(1.0)(masks), masks)
    assert g[0, 0].sum() > 0 > g[0, 1].sum()  # ascent (the occluder's) pulls the coverages further apart
