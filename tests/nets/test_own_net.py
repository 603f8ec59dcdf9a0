"""Bring your own network: registry names, dotted paths, class path mappings and nn.Module instances,
under the contract forward -> logits, features(x) -> (B, d), feature_dim."""

import warnings

import lightning as L
import pytest
import torch
import yaml

from tests.helpers.own_nets import ConvWithClassifier, Encoder, FeaturesNoDim, MLPWithFc
from zerosum.nets import OwnNet, SmallCNN, build_net

OWN = "tests.helpers.own_nets"


def test_a_net_that_follows_the_contract_is_returned_as_it_is():
    assert type(build_net("small_cnn", 10, 1)) is SmallCNN
    net = SmallCNN(10, 1)
    assert build_net(net, 10, 1) is net


def test_features_are_the_input_of_fc_and_forward_is_untouched():
    torch.manual_seed(0)
    net = MLPWithFc(10)
    own = build_net(net, 10, 1)
    x = torch.randn(5, 1, 8, 8)
    assert isinstance(own, OwnNet) and own.head is net.fc
    assert torch.equal(own(x), net(x))
    assert torch.equal(own.features(x), net.body(x))
    assert own.feature_dim == 16


def test_torchvision_layout_splits_at_classifier_before_its_dropout():
    """A ``features`` *submodule* is not the contract's method; the classifier's input is, taken
    before the classifier's own dropout (so features are identical in train and eval mode)."""
    torch.manual_seed(0)
    own = build_net(f"{OWN}.ConvWithClassifier", num_classes=7, in_channels=2).train()
    net = own.net
    x = torch.randn(4, 2, 8, 8)
    assert net.features[0].in_channels == 2 and net.classifier[1].out_features == 7  # filled from the data
    assert torch.equal(own.features(x), net.features(x).flatten(1))
    assert own.feature_dim == 4 * 6


def test_undeclared_feature_dim_is_measured_in_eval_mode_and_train_flags_come_back():
    own = build_net(FeaturesNoDim(), 10, 1, sample_shape=(1, 8, 8)).train()
    assert own.feature_dim == 20
    assert all(m.training for m in own.modules())


def test_an_encoder_without_head_is_its_own_representation_and_a_classifier_says_what_is_missing():
    enc = Encoder()
    own = build_net(enc, 10, 1, encoder=True, sample_shape=(1, 8, 8))
    x = torch.randn(3, 1, 8, 8)
    assert own.feature_dim == 12 and torch.equal(own.features(x), enc(x))
    plain = build_net(Encoder(), 10, 1)
    with pytest.raises(TypeError, match=r"^net: Encoder has no features\(x\).*fc / head / classifier.*; allowed:"):
        plain.feature_dim
    with pytest.raises(TypeError, match="no features"):
        plain.features(x)


def test_class_path_mapping_merges_init_args_and_net_args_and_fills_the_data_facts():
    own = build_net({"class_path": f"{OWN}.ConvWithClassifier", "init_args": {"width": 3}}, 4, 2)
    assert own.net.classifier[1].in_features == 12 and own.net.classifier[1].out_features == 4
    own = build_net({"class_path": f"{OWN}.ConvWithClassifier", "init_args": {"width": 3}}, 4, 2, width=5)
    assert own.net.classifier[1].in_features == 20


@pytest.mark.parametrize("spec, kwargs, error, pattern", [
    (MLPWithFc(5), {}, ValueError, r"^net: MLPWithFc's classification layer has 5 outputs but the data has 10"),
    ("resnet9000", {}, ValueError, r"^net: unknown net 'resnet9000'; allowed: a registry name \(.*small_cnn"),
    ("myproj.nets.MyNet", {}, ValueError, r"^net: cannot import 'myproj.nets.MyNet'"),
    ({"init_args": {}}, {}, ValueError, r"^net: a mapping needs class_path"),
    (MLPWithFc(10), {"hidden": 3}, ValueError, r"^net_args: only used when net is a name or a class path"),
    ("collections.OrderedDict", {}, TypeError, r"^net: OrderedDict returned OrderedDict, not an nn.Module"),
    (f"{OWN}.MLPWithFc", {"depth": 3}, TypeError,
     r"^net: MLPWithFc\(depth=.*unexpected keyword.*; allowed: the arguments"),
    (3, {}, TypeError, r"^net: got int; allowed:"),
])
def test_bad_networks_are_refused_with_one_line_naming_the_option(spec, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        build_net(spec, 10, 1, **kwargs)


def test_selection_net_errors_name_selection_net():
    with pytest.raises(ValueError, match=r"^selection_net: unknown net"):
        build_net("nope", 10, 1, argument="selection_net")


# ---- modules ----------------------------------------------------------------------------------
def _fit_and_save(model, tmp_path) -> str:
    from zerosum.datamodules import DigitsDataModule

    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, default_root_dir=str(tmp_path))
    trainer.fit(model, DigitsDataModule(batch_size=16))
    path = str(tmp_path / "model.ckpt")
    trainer.save_checkpoint(path)
    return path


def test_classifier_with_a_class_path_spec_reloads_by_itself(tmp_path):
    from zerosum.modules import Classifier

    net = {"class_path": f"{OWN}.MLPWithFc", "init_args": {"hidden": 8}}
    model = Classifier(num_classes=10, in_channels=1, net=net)
    path = _fit_and_save(model, tmp_path)
    loaded = Classifier.load_from_checkpoint(path)
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(loaded.eval()(x), model.eval()(x))


def test_classifier_with_an_instance_stores_a_note_and_reloads_when_given_it_again(tmp_path):
    from zerosum.modules import Classifier

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = Classifier(num_classes=10, in_channels=1, net=MLPWithFc(10))
    assert not [w for w in caught if "nn.Module" in str(w.message)]
    assert model.hparams.net.startswith("<not stored: tests.helpers.own_nets.MLPWithFc")
    path = _fit_and_save(model, tmp_path)
    assert "MLPWithFc" in yaml.safe_dump(torch.load(path, weights_only=False)["hyper_parameters"])
    with pytest.raises(ValueError, match=r"^net: this model was built with .*MLPWithFc instance.*net=MyNet"):
        Classifier.load_from_checkpoint(path)
    loaded = Classifier.load_from_checkpoint(path, net=MLPWithFc(10))
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(loaded.eval()(x), model.eval()(x))


def test_every_module_takes_an_own_network():
    """Classifier's subclasses, VAAL's task net, SRAL's net and selection_net, ADIOS's encoder."""
    from zerosum.modules import ADIOS, SRAL, TRADES, VAAL, AdversarialTraining

    x = torch.rand(2, 1, 8, 8)
    for cls in (AdversarialTraining, TRADES):
        m = cls(num_classes=10, in_channels=1, net=MLPWithFc(10))
        assert m.features(x).shape == (2, 16) and m.hparams.net.startswith("<not stored")
    vaal = VAAL(num_classes=10, in_channels=1, image_size=8, net=ConvWithClassifier(10, 1), vae_num_blocks=2,
                vae_base_width=4, latent_dim=4, disc_hidden_dim=8)
    assert vaal.features(x).shape == (2, 24)
    sral = SRAL(num_classes=10, in_channels=1, net=MLPWithFc(10), selection_net=FeaturesNoDim(10, 1), group_size=3)
    assert sral.selector.feature_dim == 20 and sral.replay.states.shape[-1] == 20
    adios = ADIOS(num_classes=10, in_channels=1, image_size=8, net=Encoder(), masking="none",
                  objective_args={"proj_hidden_dim": 8, "proj_output_dim": 4})
    assert adios.features(x).shape == (2, 12) and adios.objective.projector[0].in_features == 12


def test_cli_yaml_with_a_class_path_net_prints_and_trains(tmp_path, capsys):
    from zerosum.cli import run

    config = tmp_path / "own.yaml"
    config.write_text(yaml.safe_dump({
        "trainer": {"fast_dev_run": 2, "accelerator": "cpu", "logger": False, "enable_progress_bar": False},
        "model": {"class_path": "zerosum.modules.Classifier",
                  "init_args": {"net": {"class_path": f"{OWN}.MLPWithFc", "init_args": {"hidden": 8}}}},
        "data": {"class_path": "zerosum.datamodules.DigitsDataModule"},
    }))
    with pytest.raises(SystemExit):
        run(["fit", "--config", str(config), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["net"] == {"class_path": f"{OWN}.MLPWithFc", "init_args": {"hidden": 8}}
    cli = run(["fit", "--config", str(config), "--test_after_fit", "false"])
    net = cli.model.net
    assert isinstance(net.net, MLPWithFc) and net.head.out_features == 10 and net.feature_dim == 8
