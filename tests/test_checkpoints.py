"""Every LightningModule of zerosum.modules survives the checkpoint round trip, as a user runs it:
``fit``, then ``fit/validate/test/predict --ckpt_path FILE`` with the same config, ``test`` with the
run's saved ``config.yaml``, and ``Module.load_from_checkpoint(FILE)`` in Python. Data-linked values
(``data_mean``, ``image_size``, ...) must not break any of them.

Fast: per module, a one-batch fit, the Python reload and ``test --ckpt_path FILE``. Slow: the whole
round trip per module."""

import inspect
from pathlib import Path

import pytest
import torch

import zerosum.modules as modules
from zerosum.cli import DATA_LINKS, main, run

CONFIGS = Path(__file__).parents[1] / "configs"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--test_after_fit=false",
         "--trainer.num_sanity_val_steps=0"]
# note: jsonargparse reads "--trainer.limit_val_batches=1" as 1.0, i.e. all batches; 2 means two batches
FAST = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2",
        "--trainer.limit_test_batches=2", "--trainer.limit_predict_batches=2", *QUIET]
NO_CALLBACKS = ["--trainer.callbacks=[]", "--active=null"]  # the module is under test, not its callbacks

# module class -> (config on embedded data, extra arguments that keep it small)
CASES = {
    "Classifier": ("classifier/digits.yaml", []),
    "AdversarialTraining": ("robust/digits_adv_l2.yaml",
                            NO_CALLBACKS + ["--model.init_args.steps=1", "--model.init_args.eval_steps=1"]),
    "TRADES": ("caat/digits_trades_noisy_pair20.yaml", NO_CALLBACKS + ["--model.init_args.steps=1"]),
    "CAAT": ("caat/digits_caat_noisy_pair20.yaml", NO_CALLBACKS + [
        "--model.init_args.adv_steps=1", "--model.init_args.anti_steps=1", "--model.init_args.eval_steps=1"]),
    "VAAL": ("vaal/digits.yaml", NO_CALLBACKS),
    "SRAL": ("sral/digits.yaml", NO_CALLBACKS),
    "ADIOS": ("adios/digits_simclr.yaml", NO_CALLBACKS + ["--data.init_args.batch_size=16"]),
}


def fit(args: list[str], fast=FAST):
    cli = run(["fit", *args, *fast])
    last = Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt"
    assert last.is_file(), "fit wrote no <run folder>/checkpoints/last.ckpt"
    return cli, last


def check_reload(name: str, cli, last: Path) -> None:
    """The file holds only arguments the class takes, and rebuilds the same module in Python."""
    cls = getattr(modules, name)
    assert type(cli.model) is cls
    saved = torch.load(last, map_location="cpu", weights_only=False)["hyper_parameters"]
    taken = set(inspect.signature(cls.__init__).parameters)
    assert not (set(DATA_LINKS.values()) - taken) & set(saved), "a data-linked value the model does not take was saved"
    reloaded = cls.load_from_checkpoint(last, map_location="cpu")
    expected = cli.model.state_dict()
    assert reloaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(reloaded.state_dict()[k].cpu(), v.cpu()) for k, v in expected.items())


def args_of(name: str) -> list[str]:
    config, extra = CASES[name]
    return ["--config", str(CONFIGS / config), *extra]


@pytest.fixture(scope="module")
def adios_checkpoint(tmp_path_factory) -> Path:
    """An ADIOS checkpoint for LinearEval (one batch of training)."""
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("adios"))
    try:
        _, last = fit(args_of("ADIOS"), fast=["--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
                                              "--trainer.limit_val_batches=0", *QUIET])
    finally:
        os.chdir(cwd)
    return last


def linear_eval_args(encoder: Path) -> list[str]:
    """LinearEval on a frozen ADIOS encoder, built on the command line by short names."""
    return ["--model=LinearEval", f"--model.ckpt_path={encoder}", "--model.module_class=ADIOS",
            "--data=DigitsDataModule", "--data.image_size=16", "--data.channels=1"]


@pytest.mark.parametrize("name", [*CASES, "LinearEval"])
def test_checkpoint_reloads(name, request):
    """One batch of fit; the file rebuilds the module in Python and tests from the command line."""
    args = linear_eval_args(request.getfixturevalue("adios_checkpoint")) if name == "LinearEval" else args_of(name)
    cli, last = fit(args, fast=["--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
                                "--trainer.limit_val_batches=0", *QUIET])
    check_reload(name, cli, last)
    ev = run(["test", *args, f"--ckpt_path={last}", "--trainer.limit_test_batches=2", *QUIET])
    assert ev.trainer.state.finished and Path(ev.trainer.log_dir) == last.parent.parent / "test_0"


def round_trip(name: str, args: list[str]) -> None:
    cli, last = fit(args)
    run_dir = last.parent.parent
    check_reload(name, cli, last)

    # resume one more epoch, in the same run folder
    resumed = run(["fit", *args, *FAST, "--trainer.max_epochs=2", f"--ckpt_path={last}"])
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step > cli.trainer.global_step
    assert Path(resumed.trainer.log_dir) == run_dir

    # evaluation from the file, next to its run
    for sub in ("validate", "test", "predict"):
        ev = run([sub, *args, *FAST, f"--ckpt_path={last}"])
        assert ev.trainer.state.finished
        assert Path(ev.trainer.log_dir) == run_dir / f"{sub}_0", "evaluation must write next to its run"
    written = [f for f in ("predictions.csv", "features.pt") if (run_dir / "predict_0" / f).is_file()]
    assert written == (["features.pt"] if name == "ADIOS" else ["predictions.csv"])

    # the run's own saved config
    ev = run(["test", "--config", str(run_dir / "config.yaml"), f"--ckpt_path={last}",
              "--trainer.limit_test_batches=2", "--trainer.enable_progress_bar=false"])
    assert ev.trainer.state.finished and Path(ev.trainer.log_dir) == run_dir / "test_1"


@pytest.mark.slow
@pytest.mark.parametrize("name", [*CASES, "LinearEval"])
def test_checkpoint_round_trip(name, request):
    args = linear_eval_args(request.getfixturevalue("adios_checkpoint")) if name == "LinearEval" else args_of(name)
    round_trip(name, args)


def test_predict_writes_predictions_next_to_the_run():
    _, last = fit(args_of("Classifier"))
    cli = run(["predict", *args_of("Classifier"), f"--ckpt_path={last}", "--trainer.limit_predict_batches=2",
               "--trainer.enable_progress_bar=false"])
    path = last.parent.parent / "predict_0" / "predictions.csv"
    lines = path.read_text().splitlines()
    assert lines[0].split(",")[:3] == ["index", "label", "target"] and len(lines[0].split(",")) == 3 + 10
    rows = [list(map(float, ln.split(","))) for ln in lines[1:]]
    loader = cli.datamodule.predict_dataloader()
    assert len(rows) == min(2 * loader.batch_size, len(loader.dataset))
    for row in rows:
        probs = row[3:]
        assert abs(sum(probs) - 1) < 1e-4 and int(row[1]) == max(range(10), key=probs.__getitem__)
    assert len({int(r[0]) for r in rows}) == len(rows)
    main(["predict", *args_of("Classifier"), f"--ckpt_path={last}", "--trainer.limit_predict_batches=2",
          "--trainer.enable_progress_bar=false"])
    assert (last.parent.parent / "predict_1" / "predictions.csv").is_file(), "a rerun must not overwrite the first"
    assert path.read_text().splitlines() == lines


def test_every_module_class_is_covered():
    import lightning as L

    classes = {n for n in modules.__all__ if isinstance(getattr(modules, n), type)
               and issubclass(getattr(modules, n), L.LightningModule)}
    assert classes == {*CASES, "LinearEval"}, "add the new module to CASES (a config on embedded data)"
