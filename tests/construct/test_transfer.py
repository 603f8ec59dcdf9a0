import torch
from torch import nn

from zerosum.attacks import PGD
from zerosum.construct.transfer import source_architecture, transfer_success


def _linear(weight, bias):
    model = nn.Linear(10, 3)
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    return model


def test_transfer_counts_target_labels_among_clean_correct_samples():
    torch.manual_seed(0)
    source = nn.Linear(10, 3)
    x = torch.rand(300, 10)
    with torch.no_grad():
        y = source(x).argmax(1)
    t = (y + 1) % 3
    x_adv = PGD("l2", eps=3.0, steps=30, step_size=0.2, random_start=False, keep_best=True)(source, x, t, targeted=True)
    with torch.no_grad():
        assert (source(x_adv).argmax(1) == t).float().mean() > 0.95
    same = _linear(2 * source.weight, 2 * source.bias)  # same decision regions: labels the examples t
    other = _linear(-source.weight, source.bias)  # opposite directions
    rates = transfer_success(same, x, x_adv, y, t)
    assert rates["num_examples"] == 300 and rates["transfer_success"] > 0.95
    assert rates["random_direction"] < 0.5  # a random direction of the same norm rarely reaches t
    assert transfer_success(other, x, x_adv, y, t)["transfer_success"] < 0.5
    # samples the target misclassifies when clean are not counted (they are not transfers)
    wrong = y.clone()
    wrong[:100] = (y[:100] + 2) % 3
    assert transfer_success(same, x, x_adv, wrong, t)["num_examples"] == 200


def test_source_architecture_is_read_from_the_checkpoint_d_det_was_made_on(tmp_path):
    ckpt = tmp_path / "standard.ckpt"
    torch.save({"hyper_parameters": {"net": "small_cnn", "net_args": {"width": 16}}}, ckpt)
    assert source_architecture({"settings": {"source_checkpoint": str(ckpt)}}) == {"net": "small_cnn",
                                                                                   "net_args": {"width": 16}}
    assert source_architecture({"settings": {"source_checkpoint": str(tmp_path / "gone.ckpt")}}) is None
