import pytest
import torch
from torch.nn import functional as F

from zerosum.nets import SmallCNN
from zerosum.ssl import BYOL, SimSiam, build_objective


def _d(p, z):
    return -F.cosine_similarity(p, z, dim=-1).mean()


def test_simsiam_masked_loss_averages_the_selected_terms():
    torch.manual_seed(0)
    o = {k: {"p": torch.randn(4, 3), "z": torch.randn(4, 3)} for k in ("c1", "c2", "m1", "m2")}
    obj = SimSiam(8, use_no_mask=True, use_both_mask=True, use_symmetry_mask=True)
    got = obj.masked_loss((o["c1"], o["c2"]), (o["m1"], o["m2"]))
    terms = [_d(o["m1"]["p"], o["c2"]["z"]), _d(o["m2"]["p"], o["c1"]["z"]), _d(o["c1"]["p"], o["c2"]["z"]),
             _d(o["c2"]["p"], o["c1"]["z"]), _d(o["m1"]["p"], o["m2"]["z"]), _d(o["m2"]["p"], o["m1"]["z"]),
             _d(o["c2"]["p"], o["m1"]["z"]), _d(o["c1"]["p"], o["m2"]["z"])]
    assert torch.allclose(got, torch.stack(terms).mean())
    only = SimSiam(8, use_no_mask=False).masked_loss((o["c1"], o["c2"]), (o["m1"], o["m2"]))
    assert torch.allclose(only, torch.stack(terms[:2]).mean())


def test_byol_target_gets_no_gradient_and_objectives_are_named():
    enc = SmallCNN(3, 1, width=4)
    obj = BYOL(enc.feature_dim, proj_hidden_dim=8, proj_output_dim=4, pred_hidden_dim=8)
    obj.bind(enc)
    o1, o2 = obj.encode(enc, torch.randn(4, 1, 8, 8)), obj.encode(enc, torch.randn(4, 1, 8, 8))
    obj.plain_loss(o1, o2).backward()
    assert all(p.grad is None for p in obj.target_encoder.parameters())
    assert all(p.grad is not None for p in obj.predictor.parameters())
    with pytest.raises(ValueError, match="objective"):
        build_objective("moco", 8)
