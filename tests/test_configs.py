"""Every YAML in configs/ is parsed and resumable after a kill; every small one (embedded data) also
runs with fast_dev_run."""

from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from zerosum.checkpoints import describe, writes_last_every_epoch
from zerosum.cli import main, run

CONFIGS = sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml"))
EMBEDDED = ("DigitsDataModule", "SyntheticDataModule")
#: configs that read another run's output (a checkpoint, a constructed dataset) are parsed here and run
#: end to end in tests/construct/test_digits_configs.py
NEEDS_OUTPUTS = ("zerosum.construct.", "ConstructedDataModule")


def is_small(path: Path) -> bool:
    text = path.read_text()
    return any(name in text for name in EMBEDDED) and not any(name in text for name in NEEDS_OUTPUTS)


SMALL = [p for p in CONFIGS if is_small(p)]


def config_id(path: Path) -> str:
    return str(path.relative_to(path.parents[1] if path.parent.name != "configs" else path.parent))


def test_configs_exist():
    assert any(p.name == "quickstart.yaml" for p in CONFIGS)


def epochs_of(config: dict) -> float:
    """How many epochs a fit with this config runs (active learning: one per round in steps mode)."""
    active = config.get("active") or next(
        (c for c in config["trainer"].get("callbacks") or [] if c.get("class_path", "").endswith("ActiveLearning")),
        None)
    if active:
        options = active.get("init_args", active)
        return options["rounds"] * (options.get("epochs_per_round") or 1)
    trainer = config["trainer"]
    if trainer.get("max_epochs") is None and trainer.get("max_steps", -1) not in (-1, None):
        return float("inf")  # bounded by steps: assume several epochs
    return trainer.get("max_epochs") or 1000  # Lightning's default


def is_predict_only(config: dict) -> bool:
    """Dataset constructions: ``zerosum predict`` runs without a logger (nothing to resume: shards)."""
    return config["trainer"].get("logger") is False


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_config_parses_and_resumes(path, capsys):
    """Parses, and a run longer than one epoch leaves a last.ckpt every epoch (killed: it resumes with
    --ckpt_path last); a logged run also logs its learning rates and no meaningless hp_metric."""
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(path), "--print_config"])
    captured = capsys.readouterr()
    assert exit_.value.code == 0, captured.err
    assert "class_path" in captured.out
    config = yaml.safe_load(captured.out)
    if is_predict_only(config):
        return
    trainer = config["trainer"]
    callbacks = trainer.get("callbacks") or []
    if epochs_of(config) > 1:
        assert trainer.get("enable_checkpointing") is not False, "a run of several epochs must write checkpoints"
        for entry in callbacks:
            if entry["class_path"].endswith("ModelCheckpoint"):
                callback = ModelCheckpoint(**entry.get("init_args", {}))
                assert writes_last_every_epoch(callback), f"{describe(callback)} cannot resume a killed run"
    assert any(c["class_path"].endswith("LearningRateMonitor") for c in callbacks), "no learning-rate curves"
    logger = trainer.get("logger")
    for entry in logger if isinstance(logger, list) else [logger]:
        if isinstance(entry, dict):
            assert entry.get("init_args", {}).get("default_hp_metric") is not True, "hp_metric = -1 in every run"


@pytest.mark.parametrize("path", SMALL, ids=config_id)
def test_small_config_runs_fast_dev_run(path):
    cli = run(["fit", "--config", str(path), "--trainer.fast_dev_run=1"])
    assert cli.trainer.state.finished
    assert cli.trainer.global_step > 0, "fit took no optimizer step"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("path", SMALL, ids=config_id)
def test_small_config_runs_on_gpu(path):
    """Every game's module, callbacks and queries on one GPU (catches tensors left on the CPU)."""
    cli = run(["fit", "--config", str(path), "--trainer.fast_dev_run=1",
               "--trainer.accelerator=gpu", "--trainer.devices=1"])
    assert cli.trainer.strategy.root_device.type == "cuda"
    assert cli.trainer.state.finished
    assert cli.trainer.global_step > 0, "fit took no optimizer step"
