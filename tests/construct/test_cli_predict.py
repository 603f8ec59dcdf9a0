import json

import lightning as L
import pytest
import yaml

from zerosum.cli import main
from zerosum.datamodules import DigitsDataModule
from zerosum.modules import AdversarialTraining


def test_construct_then_train_through_the_cli(tmp_path, monkeypatch, capsys):
    """`zerosum predict` builds D_det shards from a checkpoint and saves its config next to them (not in
    the current directory); `zerosum fit` refuses the set while its attack missed most targets."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    data = {"class_path": "zerosum.datamodules.DigitsDataModule",
            "init_args": {"normalize": False, "augment": False, "batch_size": 64}}
    dm = DigitsDataModule(normalize=False)
    source = AdversarialTraining(10, 1, net="small_cnn", net_args={"width": 8}, eps=0.0, data_mean=dm.mean,
                                 data_std=dm.std)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(source, dm)
    trainer.save_checkpoint(tmp_path / "source.ckpt")
    out = tmp_path / "d_det"
    config = {
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
                    "callbacks": [{"class_path": "zerosum.construct.ShardWriter", "init_args": {"out_dir": str(out)}}]},
        "model": {"class_path": "zerosum.construct.NonRobustFeatureDataset",
                  "init_args": {"target": "det", "steps": 5, "checkpoint": str(tmp_path / "source.ckpt")}},
        "data": {"class_path": "zerosum.construct.ConstructionData", "init_args": {"shard_size": 400, "data": data}},
    }
    path = tmp_path / "construct.yaml"
    path.write_text(yaml.safe_dump(config))
    main(["predict", "--config", str(path)])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["settings"]["kind"] == "d_det" and manifest["num_classes"] == 10
    assert (out / "config.yaml").exists() and not list(cwd.iterdir())  # the config sits next to the shards
    rate = manifest["stats"]["target_hit_rate"]
    assert 0 <= rate < 0.9  # 5 steps of 0.1 on a 2-step model: most targets are missed
    fit = ["fit", "--model=zerosum.modules.AdversarialTraining", "--model.net=small_cnn", "--model.eps=0",
           "--data=zerosum.datamodules.ConstructedDataModule", f"--data.path={out}",
           f"--data.data={json.dumps(data)}", "--trainer.fast_dev_run=1", "--trainer.accelerator=cpu"]
    with pytest.raises(SystemExit):
        main(fit)
    last = capsys.readouterr().err.strip().splitlines()[-1]  # the user sees one line naming the set and the fix
    assert last.startswith(f"error: min_hit_rate: the d_det set at {out} reached only {100 * rate:.1f}%")
    assert str(out / "config.yaml") in last
    main(fit + ["--data.min_hit_rate=0"])
