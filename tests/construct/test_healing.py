"""A constructed dataset survives kills and damage: the reader names what is broken and how to rebuild
it; a rerun of the construction checks every shard and rebuilds only the broken ones."""

import copy
import json
import os

import pytest
import torch
from torch import nn

from tests.construct.test_construct import CountingWriter, _data, _predict, _trained_source
from zerosum.construct import NonRobustFeatureDataset, RobustFeatureDataset
from zerosum.construct.inversion import fake_relu
from zerosum.datamodules import ConstructedDataModule, DataNotFoundError
from zerosum.nets import build_net


@pytest.fixture(scope="module")
def source():
    return _trained_source(_data(), epochs=2)


def _build(source, out, writer_cls=CountingWriter):
    module = NonRobustFeatureDataset(num_classes=4, target="det", eps=3.0, step_size=0.3, steps=10, source=source)
    return _predict(module, _data(), out, shard_size=30, writer_cls=writer_cls)


def _read(out):
    data = ConstructedDataModule(str(out), _data(), augment=False, min_hit_rate=0.0)
    data.setup("fit")
    return data.train_set.dataset.images


def _rewrites(out):
    path = out / "writes_rank0.txt"
    return path.read_text().split() if path.exists() else []


def test_truncated_shard_is_named_and_a_rerun_rebuilds_only_it(tmp_path, source):
    out = tmp_path / "d_det"
    manifest = _build(source, out)
    assert {"bytes", "sha256"} <= set(manifest["shards"][1])
    before = _read(out)
    (out / "writes_rank0.txt").unlink()
    shard = out / "shard_00001.pt"
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[: size // 2])  # a disk that filled up, a copy that stopped
    with pytest.raises(DataNotFoundError, match=rf"^path: shard {shard} is damaged: {size // 2} bytes, its record "
                                                rf"says {size}; rebuild it with `zerosum predict --config "):
        _read(out)
    with pytest.warns(UserWarning, match="shard_00001.pt is damaged.*rebuilding it"):
        _build(source, out)
    assert _rewrites(out) == ["1"]
    assert torch.equal(_read(out), before)  # the attack is deterministic: the same set again


def test_same_size_corruption_and_a_shard_without_record_are_rebuilt(tmp_path, source):
    out = tmp_path / "d_det"
    _build(source, out)
    (out / "writes_rank0.txt").unlink()
    data = bytearray((out / "shard_00000.pt").read_bytes())
    data[-20] ^= 0xFF  # same size, other content
    (out / "shard_00000.pt").write_bytes(bytes(data))
    (out / "shard_00002.pt.json").unlink()  # killed between the shard and its record
    with pytest.raises(DataNotFoundError, match="shard_00000.pt is damaged: its SHA-256 differs"):
        _read(out)
    with pytest.warns(UserWarning, match="rebuilding it"):
        _build(source, out)
    assert sorted(_rewrites(out)) == ["0", "2"]
    _read(out)


def test_truncated_manifest_is_named_and_rewritten_by_a_rerun(tmp_path, source):
    out = tmp_path / "d_det"
    _build(source, out)
    (out / "writes_rank0.txt").unlink()
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    with pytest.raises(DataNotFoundError, match=rf"^path: {manifest} is unreadable \(JSONDecodeError.*rebuild it"):
        _read(out)
    with pytest.warns(UserWarning, match="manifest.json is unreadable.*rewritten at the end"):
        _build(source, out)
    assert _rewrites(out) == []  # every shard was intact
    assert json.loads(manifest.read_text())["complete"]
    _read(out)


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_run(tmp_path, source):
    out = tmp_path / "d_det"
    _build(source, out)
    for name in ("shard_00003.pt.tmp4242", "manifest.json.tmp17", "shard_00001.pt.json.tmp9"):
        (out / name).write_bytes(b"half a file")
    with pytest.warns(UserWarning, match="removed 3 leftover file"):
        _build(source, out)
    assert not [p for p in os.listdir(out) if ".tmp" in p]


def test_fake_relu_passes_gradients_through_the_last_relu_only():
    torch.manual_seed(0)
    net = build_net("preact_resnet18", 4, 1, width=4).eval()  # backbone ends BN, ReLU, avg-pool, flatten
    assert isinstance(net.backbone[-3], nn.ReLU)
    with torch.no_grad():  # a bias that switches most final units off
        net.backbone[-4].bias.fill_(-1.0)
    identity = copy.deepcopy(net)
    identity.backbone[-3] = nn.Identity()  # the same net with its last ReLU removed
    x = torch.rand(3, 1, 8, 8, requires_grad=True)

    def grad(model, context=None):
        with context or torch.enable_grad():
            (g,) = torch.autograd.grad(model.features(x).sum(), x)
        return g

    with torch.no_grad():
        plain = net.features(x)
        with fake_relu(net):
            assert torch.equal(net.features(x), plain)  # forward unchanged
    fake = grad(net, fake_relu(net))
    assert torch.allclose(fake, grad(identity), atol=1e-6) and not torch.allclose(fake, grad(net), atol=1e-6)
    assert "forward" not in vars(net.backbone[-3])  # restored afterwards
    with pytest.raises(ValueError, match="^fake_relu: CifarResNet .*; allowed: fake_relu: false"):
        RobustFeatureDataset(source=build_net("resnet18_cifar", 4, 1), fake_relu=True)
