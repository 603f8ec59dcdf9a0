import subprocess
import sys
from pathlib import Path

import pytest

from zerosum.cli import main, run

CONFIG = str(Path(__file__).parents[1] / "configs" / "classifier" / "digits.yaml")


def test_fit_links_data_facts_into_the_model():
    cli = run(["fit", "--config", CONFIG, "--trainer.fast_dev_run=1"])
    assert cli.model.hparams.num_classes == 10 and cli.model.hparams.in_channels == 1
    assert cli.trainer.state.finished


def test_fit_then_test_saves_config_next_to_logs(tmp_path):
    args = ["fit", "--config", CONFIG, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={tmp_path}"]
    cli = run(args)
    assert (Path(cli.trainer.log_dir) / "config.yaml").exists()
    assert "test/acc" in cli.trainer.callback_metrics
    run(args)  # a second run in the same folder is allowed


@pytest.mark.parametrize("subcommand, metric", [("validate", "val/acc"), ("test", "test/acc"), ("predict", None)])
def test_other_subcommands(subcommand, metric):
    cli = run([subcommand, "--config", CONFIG, "--trainer.fast_dev_run=1"])
    assert cli.trainer.state.fn == subcommand and cli.trainer.state.finished
    if metric:
        assert 0.0 <= float(cli.trainer.callback_metrics[metric]) <= 1.0


def test_print_config_shows_class_paths(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", CONFIG, "--print_config"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "zerosum.modules.Classifier" in out and "zerosum.datamodules.DigitsDataModule" in out


def test_unknown_model_option_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", CONFIG, "--model.init_args.nett=small_cnn"])
    assert exit_.value.code != 0
    assert "nett" in capsys.readouterr().err


def test_python_dash_m_help():
    out = subprocess.run([sys.executable, "-m", "zerosum", "fit", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--config" in out.stdout
