"""The digits configs of Ilyas et al.'s constructions run end to end through the CLI, chained by the
paths they name (source checkpoints, construction folders), with tiny budgets."""

import json
from pathlib import Path

import pytest

from zerosum.cli import main

CONFIGS = Path(__file__).parents[2] / "configs" / "robust"
SMALL = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
         "--test_after_fit=false"]


@pytest.mark.slow
def test_digits_sources_constructions_and_training_chain_through_their_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(CONFIGS / "digits_standard.yaml"), *SMALL])
    main(["fit", "--config", str(CONFIGS / "digits_adv_l2.yaml"), *SMALL])
    for kind, budget in (("d_det", "--model.steps=3"), ("d_rand", "--model.steps=3"), ("d_r", "--model.steps=2"),
                         ("d_nr", "--model.steps=2")):
        main(["predict", "--config", str(CONFIGS / f"digits_construct_{kind}.yaml"), budget,
              "--data.init_args.shard_size=2000"])
        out = tmp_path / "outputs" / "robust" / "digits" / kind
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["complete"] and manifest["settings"]["kind"] == kind
        assert (out / "config.yaml").exists()
        assert ("target_hit_rate" if kind in ("d_det", "d_rand") else "inversion_loss") in manifest["stats"]
    assert not (tmp_path / "config.yaml").exists()
    for kind in ("d_r", "d_nr"):
        main(["fit", "--config", str(CONFIGS / f"digits_train_{kind}.yaml"), "--trainer.fast_dev_run=1"])
    # 3 steps of a barely trained source reach few targets: training on D_det is refused, naming the set
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "digits_train_d_det.yaml"), "--trainer.fast_dev_run=1"])
    main(["fit", "--config", str(CONFIGS / "digits_train_d_det.yaml"), "--trainer.fast_dev_run=1",
          "--data.init_args.min_hit_rate=0"])
