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
            "--trainer.limit_val_batches=2", f"--trainer.default_root_dir={tmp_path}"]
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


def test_help_lists_zerosum_parts_by_short_name(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    for name in ("zerosum.modules.VAAL", "zerosum.modules.ADIOS", "zerosum.datamodules.DigitsDataModule",
                 "zerosum.callbacks.ActiveLearning", "--active"):
        assert name in out, name
    with pytest.raises(SystemExit):
        main(["fit", "--active.help", "ActiveLearning"])
    out = capsys.readouterr().out
    assert "zerosum.query.EntropyStrategy" in out and "--active.budget" in out
    with pytest.raises(SystemExit):
        main(["fit", "--model.help", "Classifier"])
    out = capsys.readouterr().out
    # descriptions come from the docstring; data-linked arguments are not required
    assert "label smoothing" in out.lower() and "(required" not in out
    assert "[from data.num_classes" in out


def test_short_names_build_the_classes():
    from zerosum.datamodules import DigitsDataModule
    from zerosum.modules import Classifier

    cli = run(["fit", "--model=Classifier", "--data=DigitsDataModule", "--model.net_args={'width': 8}",
               "--trainer.fast_dev_run=1"])
    assert type(cli.model) is Classifier and type(cli.datamodule) is DigitsDataModule
    assert cli.model.hparams.num_classes == 10


ACTIVE = {"strategy": {"class_path": "zerosum.query.EntropyStrategy"}, "rounds": 3, "epochs_per_round": 1,
          "budget": 20}
POOL = {"class_path": "zerosum.datamodules.ActivePoolDataModule",
        "init_args": {"initial_labeled": 30, "datamodule": {"class_path": "zerosum.datamodules.DigitsDataModule",
                                                            "init_args": {"batch_size": 32}}}}
MODEL = {"class_path": "zerosum.modules.Classifier", "init_args": {"net_args": {"width": 8}}}


@pytest.mark.parametrize("where", ["active", "trainer.callbacks"])
def test_active_learning_options_on_the_command_line(where, tmp_path, capsys):
    """`--active.*` reaches the callback's options; configs listing the callback under trainer.callbacks
    keep working."""
    import yaml

    from zerosum.callbacks import ActiveLearning
    from zerosum.query import RandomStrategy

    config = {"model": MODEL, "data": POOL, "trainer": {"enable_progress_bar": False}}
    if where == "active":
        config["active"] = ACTIVE
        extra = ["--active.rounds=2", "--active.budget=7", "--active.strategy=RandomStrategy"]
    else:
        config["trainer"]["callbacks"] = [{"class_path": "zerosum.callbacks.ActiveLearning", "init_args": ACTIVE}]
        extra = []
    path = tmp_path / "al.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = run(["fit", "--config", str(path), "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=0",
               "--test_after_fit=false", *extra])
    active = [c for c in cli.trainer.callbacks if isinstance(c, ActiveLearning)]
    assert len(active) == 1
    al = active[0]
    if where == "active":
        assert (al.rounds, al.budget, type(al.strategy)) == (2, 7, RandomStrategy)
    assert al.completed_rounds == al.rounds
    assert cli.datamodule.num_labeled == 30 + (al.rounds - 1) * al.budget
    assert (Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt").is_file()
    if where == "active":  # resuming it as another experiment is refused, naming each change, writing nothing
        before = sorted(Path(cli.trainer.log_dir).rglob("*"))
        with pytest.raises(SystemExit) as exit_:
            main(["fit", "--config", str(path), "--ckpt_path=last", "--test_after_fit=false", *extra,
                  "--active.budget=8", "--active.strategy=EntropyStrategy"])
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert exit_.value.code == 2 and last.startswith("error: ckpt_path: "), last
        assert "budget 7 -> 8" in last and '"zerosum.query.RandomStrategy" -> "zerosum.query.EntropyStrategy"' in last
        assert sorted(Path(cli.trainer.log_dir).rglob("*")) == before


def test_logs_learning_rates_and_no_hp_metric():
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cli = run(["fit", "--config", CONFIG, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
               "--trainer.limit_val_batches=2", "--test_after_fit=false", "--trainer.enable_progress_bar=false"])
    events = EventAccumulator(cli.trainer.log_dir)
    events.Reload()
    tags = events.Tags()["scalars"]
    assert any(t.startswith("lr-") for t in tags), tags
    assert "hp_metric" not in tags


def test_last_resumes_this_configs_own_run():
    """Runs of different configs in one folder do not mix: `--ckpt_path last` continues the newest run of
    the same config, in its own run folder."""
    fast = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2",
            "--test_after_fit=false", "--trainer.enable_progress_bar=false"]
    first = run(["fit", "--config", CONFIG, *fast])
    other = Path("other.yaml")
    other.write_text(Path(CONFIG).read_text())
    second = run(["fit", "--config", str(other), *fast])  # newer, but of another config
    assert second.trainer.log_dir != first.trainer.log_dir
    resumed = run(["fit", "--config", CONFIG, *fast, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert resumed.trainer.log_dir == first.trainer.log_dir
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step == 2 * first.trainer.global_step


def test_without_a_logger_nothing_lands_in_the_current_directory_by_surprise():
    """`logger: false` drops the configs' LearningRateMonitor (it needs a logger) and saves no config.yaml
    into the current directory, where every such run would overwrite the last one's."""
    cli = run(["fit", "--config", CONFIG, "--trainer.logger=false", "--trainer.max_steps=2",
               "--trainer.limit_val_batches=0", "--test_after_fit=false", "--trainer.enable_progress_bar=false"])
    assert cli.trainer.state.finished and not Path("config.yaml").exists()
    assert Path("checkpoints/last.ckpt").is_file()
    resumed = run(["fit", "--config", CONFIG, "--trainer.logger=false", "--trainer.max_steps=4", "--ckpt_path=last",
                   "--trainer.limit_val_batches=0", "--test_after_fit=false", "--trainer.enable_progress_bar=false"])
    assert Path(resumed.config.fit.ckpt_path).resolve() == Path("checkpoints/last.ckpt").resolve()
    assert resumed.trainer.global_step == 4


def test_every_class_by_short_name_documents_each_argument_in_help():
    """`--model.help X` (and data, callbacks, strategies) shows a description for every argument: the
    docstrings' `Args:` sections parse (one documented argument per line)."""
    import lightning as L
    from jsonargparse import ArgumentParser

    import zerosum.callbacks as callbacks
    import zerosum.datamodules as datamodules
    import zerosum.modules as modules
    import zerosum.query as query

    undocumented = {}
    for package, base in ((modules, L.LightningModule), (datamodules, L.LightningDataModule),
                          (callbacks, L.Callback), (query, query.QueryStrategy)):
        for name in package.__all__:
            cls = getattr(package, name)
            if not (isinstance(cls, type) and issubclass(cls, base)) or cls is base:
                continue
            parser = ArgumentParser(exit_on_error=False)
            parser.add_class_arguments(cls, "x", sub_configs=True)
            missing = [a.dest[2:] for a in parser._actions
                       if a.dest.startswith("x.") and a.dest.count(".") == 1 and not a.help]
            if missing:
                undocumented[name] = missing
    assert not undocumented, undocumented
