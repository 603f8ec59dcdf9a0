"""Every YAML in configs/ is parsed; every small one (embedded data) also runs with fast_dev_run."""

from pathlib import Path

import pytest
import torch

from zerosum.cli import main, run

CONFIGS = sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml"))
EMBEDDED = ("DigitsDataModule", "SyntheticDataModule")


def is_small(path: Path) -> bool:
    return any(name in path.read_text() for name in EMBEDDED)


SMALL = [p for p in CONFIGS if is_small(p)]


def config_id(path: Path) -> str:
    return str(path.relative_to(path.parents[1] if path.parent.name != "configs" else path.parent))


def test_configs_exist():
    assert any(p.name == "quickstart.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_config_parses(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(path), "--print_config"])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert "class_path" in capsys.readouterr().out


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
