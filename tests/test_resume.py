"""A killed run resumes exactly: the quickstart (VAAL active learning on digits, shortened to 3 short
rounds) is SIGKILLed in a subprocess as soon as the checkpoint after round 0 (and its query) exists,
resumed with ``--ckpt_path last`` in the same run folder, and must end with the same ``labeled.json``
and ``rounds.csv`` (timing columns aside) as an uninterrupted run started beside it."""

from pathlib import Path

import pytest

from tests.helpers.resume import run_pair, shrink
from zerosum.cli import main, run

QUICKSTART = Path(__file__).parents[1] / "configs" / "quickstart.yaml"


@pytest.mark.slow
def test_quickstart_survives_a_kill(tmp_path, monkeypatch, capsys):
    # killed once the checkpoint of epoch 1 exists: steps mode (one epoch = one round) after round 1 and its
    # query, epochs mode (2 epochs a round) after round 0
    config = shrink(QUICKSTART, tmp_path / "quickstart.yaml", rounds=3, budget=30, steps_per_round=20,
                    epochs_per_round=2)
    result = run_pair(config, tmp_path, kill_after_epoch=1, timeout=900)
    assert max(result["checkpoints_at_kill"]) < 2, result
    assert "Restored all states" in result["resume_log"], "the resumed run did not load the checkpoint"
    whole, resumed = result["whole"], result["resumed"]
    assert [r["round"] for r in whole["rounds"]] == ["0", "1", "2"]
    assert resumed["rounds"] == whole["rounds"]
    assert resumed["labeled"] == whole["labeled"]
    assert Path(resumed["folder"]).name == "version_0", "the resumed run must continue in its own run folder"

    # the resumed run's checkpoint evaluates next to it, active-learning config and all
    monkeypatch.chdir(tmp_path / "killed")
    last = next((tmp_path / "killed").rglob("last.ckpt"))
    cli = run(["test", "--config", str(config), f"--ckpt_path={last}", "--trainer.enable_progress_bar=false"])
    assert Path(cli.trainer.log_dir) == last.parent.parent / "test_0"
    assert 0.0 <= float(cli.trainer.callback_metrics["test/acc"]) <= 1.0

    # resuming with a changed experiment is refused with one line naming the change
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(config), "--ckpt_path=last", "--active.budget=31", "--test_after_fit=false"])
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and last_line.startswith("error: ") and "budget 30 -> 31" in last_line, last_line
