"""The bad-input catalogue: every mistake a user can make on the command line ends with exit status 2
and one final line ``error: <option>: ...`` naming the option, with no traceback and no jsonargparse
``Namespace(...)`` dump. Most fail while parsing or building the classes, so the whole catalogue
runs in seconds."""

import hashlib
import io
import json
from pathlib import Path

import pytest
import torch
import yaml

from zerosum.cli import main

CONFIGS = Path(__file__).parents[1] / "configs"
CLASSIFIER = ["fit", "--config", str(CONFIGS / "classifier/digits.yaml"), "--trainer.fast_dev_run=1"]
ADVERSARIAL = ["fit", "--config", str(CONFIGS / "robust/digits_adv_l2.yaml"), "--trainer.fast_dev_run=1"]
ADIOS = ["fit", "--config", str(CONFIGS / "adios/digits_simclr.yaml"), "--trainer.fast_dev_run=1"]
CONSTRUCTED = ["fit", "--model=Classifier", "--data=ConstructedDataModule", "--data.data=DigitsDataModule",
               "--data.data.normalize=false", "--trainer.fast_dev_run=1"]
SCENARIO = ["fit", "--config", str(CONFIGS / "caat/digits_trades_noisy_pair20.yaml"), "--trainer.fast_dev_run=1"]

#: an active-learning run written the way the configs write it (top-level ``active:``)
ACTIVE_CONFIG = {
    "seed_everything": 0,
    "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
    "active": {"strategy": {"class_path": "zerosum.query.EntropyStrategy"}, "rounds": 2, "epochs_per_round": 1,
               "budget": 20},
    "model": {"class_path": "zerosum.modules.Classifier", "init_args": {"net_args": {"width": 8}}},
    "data": {"class_path": "zerosum.datamodules.ActivePoolDataModule",
             "init_args": {"initial_labeled": 20, "datamodule": {"class_path": "zerosum.datamodules.DigitsDataModule",
                                                                 "init_args": {"batch_size": 32}}}},
}
ACTIVE = ["fit", "--config", "active.yaml", "--trainer.max_epochs=2", "--trainer.limit_train_batches=2",
          "--trainer.limit_val_batches=0"]


def _files(tmp: Path) -> None:
    (tmp / "active.yaml").write_text(yaml.safe_dump(ACTIVE_CONFIG))
    listed = dict(ACTIVE_CONFIG, trainer={**ACTIVE_CONFIG["trainer"], "callbacks": [
        {"class_path": "zerosum.callbacks.ActiveLearning", "init_args": ACTIVE_CONFIG["active"]}]})
    (tmp / "active_twice.yaml").write_text(yaml.safe_dump(listed))
    no_resume = dict(ACTIVE_CONFIG, trainer={**ACTIVE_CONFIG["trainer"], "callbacks": [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True, "save_top_k": 0}}]})
    (tmp / "active_no_resume.yaml").write_text(yaml.safe_dump(no_resume))
    (tmp / "empty.ckpt").write_bytes(b"")
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {}}, tmp / "whole.ckpt")
    (tmp / "truncated.ckpt").write_bytes((tmp / "whole.ckpt").read_bytes()[:300])
    (tmp / "notes.ckpt").write_text("not a checkpoint")
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "zerosum.modules.VAAL", "num_classes": 10}},
               tmp / "vaal.ckpt")
    (tmp / "broken.yaml").write_text("trainer: [unclosed\n")
    (tmp / "constructed").mkdir()
    (tmp / "constructed" / "manifest.json").write_text('{"shards": [')  # killed mid-write (before atomic writes)
    # a complete constructed dataset whose shard was cut short (a full disk, an interrupted copy) ...
    buffer = io.BytesIO()
    torch.save({"images": torch.zeros(4, 1, 8, 8), "labels": torch.zeros(4, dtype=torch.long)}, buffer)
    shard = buffer.getvalue()
    checked = {"bytes": len(shard), "sha256": hashlib.sha256(shard).hexdigest()}
    for name, content, record in (("cut_shard", shard[:200], checked),
                                  ("garbled_shard", b"not a shard", {})):  # ... or is no shard (an old record)
        (tmp / name).mkdir()
        (tmp / name / "shard_00000.pt").write_bytes(content)
        record = {"file": "shard_00000.pt", "count": 4, **record}
        (tmp / name / "manifest.json").write_text(json.dumps({"complete": True, "num_shards": 1, "shards": [record]}))


# (id, arguments, a word the last line must contain)
CATALOGUE = [
    # active learning (the callback, the pool, the strategy)
    ("budget 0", ACTIVE + ["--active.budget=0"], "budget"),
    ("budget -10", ACTIVE + ["--active.budget=-10"], "budget"),
    ("budget 1.5", ACTIVE + ["--active.budget=1.5"], "budget"),
    ("rounds 0", ACTIVE + ["--active.rounds=0"], "rounds"),
    ("epochs_per_round 0", ACTIVE + ["--active.epochs_per_round=0"], "epochs_per_round"),
    ("eval_split train", ACTIVE + ["--active.eval_split=train"], "eval_split"),
    ("unknown strategy", ACTIVE + ["--active.strategy=Nope"], "strategy"),
    ("more labels than the pool", ACTIVE + ["--active.rounds=100", "--active.budget=100"], "budget"),
    ("initial_labeled 0", ACTIVE + ["--data.init_args.initial_labeled=0"], "initial_labeled"),
    ("initial_mode unknown", ACTIVE + ["--data.init_args.initial_mode=stratified"], "initial_mode"),
    ("ActiveLearning twice", ["fit", "--config", "active_twice.yaml"], "active"),
    ("active learning that cannot resume", ["fit", "--config", "active_no_resume.yaml"], "trainer.callbacks"),
    ("active learning without a pool", CLASSIFIER + ["--active.strategy=EntropyStrategy", "--active.rounds=2",
                                                     "--active.epochs_per_round=1", "--active.budget=5"], "data"),
    # models
    ("unknown net", CLASSIFIER + ["--model.init_args.net=nope"], "net"),
    ("unknown net option", CLASSIFIER + ["--model.init_args.net_args={'width2': 3}"], "net"),
    ("misspelt model option", CLASSIFIER + ["--model.init_args.nett=small_cnn"], "nett"),
    ("unknown model", CLASSIFIER + ["--model=Nope"], "model"),
    ("unknown optimizer", CLASSIFIER + ["--model.init_args.optimizer=torch.optim.Nope"], "optimizer"),
    ("label_smoothing 1.5", CLASSIFIER + ["--model.init_args.label_smoothing=1.5"], "label_smoothing"),
    ("scheduler_interval batch", CLASSIFIER + ["--model.init_args.scheduler_interval=batch"], "scheduler_interval"),
    ("ADIOS num_masks 1", ADIOS + ["--model.init_args.num_masks=1"], "num_masks"),
    ("ADIOS num_masks 0", ADIOS + ["--model.init_args.num_masks=0"], "num_masks"),
    ("ADIOS unknown masking", ADIOS + ["--model.init_args.masking=cutout"], "masking"),
    ("PGD eps < 0", ADVERSARIAL + ["--model.init_args.eps=-0.1"], "eps"),
    ("PGD unknown norm", ADVERSARIAL + ["--model.init_args.norm=l3"], "norm"),
    ("PGD step_size 0", ADVERSARIAL + ["--model.init_args.step_size=0"], "step_size"),
    ("PGD steps 0", ADVERSARIAL + ["--model.init_args.steps=0"], "steps"),
    # data
    ("missing ImageFolder root", ["fit", "--model=Classifier", "--data=ImageFolderDataModule",
                                  "--data.root=no/such/folder", "--trainer.fast_dev_run=1"], "root"),
    ("val_size 2.5", CLASSIFIER + ["--data.init_args.val_size=2.5"], "val_size"),
    ("batch_size 0", CLASSIFIER + ["--data.init_args.batch_size=0"], "batch_size"),
    ("noise_rate 1.5", SCENARIO + ["--data.init_args.noise_rate=1.5"], "noise_rate"),
    ("imbalance factor 0.5", SCENARIO + ["--data.init_args.imbalance_factor=0.5"], "imbalance_factor"),
    ("unknown noise type", SCENARIO + ["--data.init_args.noise=flip"], "noise"),
    ("unknown datamodule", CLASSIFIER + ["--data=Nope"], "data"),
    ("truncated manifest.json", CONSTRUCTED + ["--data.path=constructed"], "manifest.json"),
    ("missing constructed dataset", CONSTRUCTED + ["--data.path=no/such/d_det"], "path"),
    ("truncated shard", CONSTRUCTED + ["--data.path=cut_shard"], "shard_00000.pt is damaged"),
    ("unreadable shard", CONSTRUCTED + ["--data.path=garbled_shard"], "shard_00000.pt is unreadable"),
    # trainer and command line
    ("max_epochs not a number", CLASSIFIER + ["--trainer.max_epochs=abc"], "max_epochs"),
    ("seed not a number", CLASSIFIER + ["--seed_everything=abc"], "seed_everything"),
    ("test_after_fit maybe", CLASSIFIER + ["--test_after_fit=maybe"], "test_after_fit"),
    ("missing config file", ["fit", "--config", "nope.yaml"], "config"),
    ("broken YAML", ["fit", "--config", "broken.yaml"], "config"),
    ("unknown accelerator", CLASSIFIER + ["--trainer.accelerator=tpu9"], "accelerator"),
    ("unknown trainer strategy", CLASSIFIER + ["--trainer.strategy=nope"], "trainer.strategy"),
    ("precision 7", CLASSIFIER + ["--trainer.precision=7"], "trainer.precision"),
    ("devices not a number", CLASSIFIER + ["--trainer.devices=abc"], "trainer.devices"),
    ("misspelt trainer option", CLASSIFIER + ["--trainer.max_epochz=3"], "--trainer.max_epochs"),
    ("misspelt data option", CLASSIFIER + ["--data.init_args.bach_size=3"], "batch_size"),
    ("unknown subcommand", ["fitt", "--config", str(CONFIGS / "classifier/digits.yaml")], "subcommand"),
    ("no model", ["fit", "--data=DigitsDataModule"], "model"),
    ("negative learning rate", CLASSIFIER + ["--model.init_args.optimizer.init_args.lr=-1"], "optimizer"),
    ("digits image_size 0", CLASSIFIER + ["--data.init_args.image_size=0"], "image_size"),
    # checkpoints
    ("missing checkpoint", ["test", "--config", str(CONFIGS / "classifier/digits.yaml"), "--ckpt_path=no.ckpt"],
     "ckpt_path"),
    ("empty checkpoint", ["test", "--config", str(CONFIGS / "classifier/digits.yaml"), "--ckpt_path=empty.ckpt"],
     "ckpt_path"),
    ("truncated checkpoint", ["fit", "--config", str(CONFIGS / "classifier/digits.yaml"),
                              "--ckpt_path=truncated.ckpt"], "ckpt_path"),
    ("text file as checkpoint", ["validate", "--config", str(CONFIGS / "classifier/digits.yaml"),
                                 "--ckpt_path=notes.ckpt"], "ckpt_path"),
    ("checkpoint of another model", ["test", "--config", str(CONFIGS / "classifier/digits.yaml"),
                                     "--ckpt_path=vaal.ckpt"], "ckpt_path"),
    ("folder as checkpoint", ["test", "--config", str(CONFIGS / "classifier/digits.yaml"), "--ckpt_path=."],
     "ckpt_path"),
    ("last without any run", ["test", "--config", str(CONFIGS / "classifier/digits.yaml"), "--ckpt_path=last"],
     "ckpt_path"),
    ("LinearEval unknown module_class", ["fit", "--model=LinearEval", "--model.ckpt_path=whole.ckpt",
                                         "--model.module_class=Nope", "--data=DigitsDataModule"], "module_class"),
    ("LinearEval missing checkpoint", ["fit", "--model=LinearEval", "--model.ckpt_path=none.ckpt",
                                       "--data=DigitsDataModule"], "ckpt_path"),
]


@pytest.mark.parametrize("args, option", [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE])
def test_bad_input_gets_one_line(args, option, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ZEROSUM_DEBUG", raising=False)
    _files(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert exit_.value.code == 2, err[-2000:]
    assert last.startswith("error: ") and option in last, last
    assert "Traceback" not in err and "Namespace(" not in err and "Given value" not in err, err[-2000:]


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 30


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv("ZEROSUM_DEBUG", raising=False)
    with pytest.raises(ValueError, match="label_smoothing"):
        main(CLASSIFIER + ["--model.init_args.label_smoothing=1.5", "--debug"])
