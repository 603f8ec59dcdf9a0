"""A 2-process ``torchrun`` of a digits config through the CLI, as the README's multi-node recipe
runs it (one node, CPU, gloo): it must exit 0, write a checkpoint, and end with identical ranks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.ddp import assert_ranks_in_sync

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # two fresh interpreters importing torch + Lightning: ~20 s on 2 idle cores
def test_torchrun_two_processes_through_the_cli(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "zerosum", "fit", "--config", str(REPO / "configs/classifier/digits.yaml"),
           "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
           "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "2",
           "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
           "--trainer.callbacks+=tests.helpers.ddp.RankSnapshot", f"--trainer.callbacks.dirpath={tmp_path}"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    checkpoints = list(tmp_path.rglob("*.ckpt"))
    assert checkpoints, f"no checkpoint under {tmp_path}"
    ckpt = torch.load(checkpoints[0], weights_only=False)
    assert ckpt["global_step"] == 3
    snaps = assert_ranks_in_sync(tmp_path)  # both ranks end with rank 0's weights and buffers
    assert all(torch.equal(v, snaps[0]["state"][k]) for k, v in ckpt["state_dict"].items())
    assert "test/acc" in done.stdout  # fit ended with the test of the final weights
