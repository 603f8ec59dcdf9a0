"""Kill a ``zerosum fit`` subprocess with SIGKILL mid-run, resume it with ``--ckpt_path last`` and compare
its active-learning outputs with those of an uninterrupted run (tests/test_resume.py; also runnable by
hand on the full configs: ``python -m tests.helpers.resume configs/vaal/digits.yaml --kill-after-epoch 20``)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

#: rounds.csv columns that measure time, not results
TIMING = re.compile(r"seconds|time")


def active_options(config: dict) -> dict:
    """The ActiveLearning options of a config, under ``active:`` or in ``trainer.callbacks``."""
    if config.get("active"):
        return config["active"].get("init_args", config["active"])
    for entry in config["trainer"].get("callbacks") or []:
        if entry["class_path"].endswith("ActiveLearning"):
            return entry.setdefault("init_args", {})
    raise ValueError("the config has no ActiveLearning callback")


def shrink(config_path: Path, out: Path, **options) -> Path:
    """``config_path`` with the given ActiveLearning options replaced, written to ``out``."""
    config = yaml.safe_load(config_path.read_text())
    active = active_options(config)
    for key, value in options.items():
        if key in ("epochs_per_round", "steps_per_round") and active.get(key) is None:
            continue  # the config counts its rounds the other way
        active[key] = value
    config["trainer"]["enable_progress_bar"] = False
    config["trainer"]["enable_model_summary"] = False
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def saved_epochs(cwd: Path) -> list[int]:
    """Epochs of the ``epoch=E-step=S.ckpt`` files the run has written so far."""
    return [int(m.group(1)) for p in cwd.rglob("epoch=*.ckpt") if (m := re.match(r"epoch=(\d+)-", p.name))]


def kill_after(proc: subprocess.Popen, cwd: Path, epoch: int, timeout: float) -> float:
    """SIGKILL ``proc`` as soon as the checkpoint of ``epoch`` exists; returns the time it took."""
    t0 = time.time()
    while not any(e >= epoch for e in saved_epochs(cwd)):
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended (exit {proc.returncode}) before epoch {epoch} was saved")
        if time.time() - t0 > timeout:
            proc.kill()
            raise TimeoutError(f"no checkpoint of epoch {epoch} after {timeout} s")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return time.time() - t0


def outputs(cwd: Path) -> dict:
    """``rounds.csv`` (timing columns dropped) and ``labeled.json`` of the one run under ``cwd``."""
    rounds_files = sorted(cwd.rglob("rounds.csv"))
    labeled_files = sorted(cwd.rglob("labeled.json"))
    assert len(rounds_files) == 1 and len(labeled_files) == 1, (rounds_files, labeled_files)
    with open(rounds_files[0]) as f:
        rows = [{k: v for k, v in row.items() if not TIMING.search(k)} for row in csv.DictReader(f)]
    labeled = json.loads(labeled_files[0].read_text())
    return {"rounds": rows, "labeled": labeled, "folder": str(rounds_files[0].parent)}


def run_pair(config: Path, workdir: Path, kill_after_epoch: int, timeout: float = 3600) -> dict:
    """An uninterrupted run in ``workdir/whole`` and a killed + resumed one in ``workdir/killed`` (started
    together); returns both runs' outputs and what happened."""
    whole, killed = workdir / "whole", workdir / "killed"
    whole.mkdir(parents=True, exist_ok=True)
    killed.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    a = _start(config, whole)
    b = _start(config, killed)
    waited = kill_after(b, killed, kill_after_epoch, timeout)
    epochs_before = sorted(saved_epochs(killed))
    c = _start(config, killed, "--ckpt_path=last")
    _finish(c, timeout)
    _finish(a, timeout)
    return {"whole": outputs(whole), "resumed": outputs(killed), "killed_after_s": round(waited, 1),
            "checkpoints_at_kill": epochs_before, "wall_s": round(time.time() - t0, 1),
            "resume_log": Path(c._log.name).read_text()}


def _start(config: Path, cwd: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    log = open(cwd / f"zerosum_{len(list(cwd.glob('zerosum_*.log')))}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "zerosum", "fit", "--config", str(config),
                             "--test_after_fit=false", *extra], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc._log = log  # type: ignore[attr-defined]
    return proc


def _finish(proc: subprocess.Popen, timeout: float) -> None:
    rc = proc.wait(timeout=timeout)
    proc._log.close()  # type: ignore[attr-defined]
    if rc != 0:
        raise RuntimeError(f"zerosum exited with {rc}:\n{Path(proc._log.name).read_text()[-3000:]}")  # type: ignore[attr-defined]


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", type=Path)
    parser.add_argument("--kill-after-epoch", type=int, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("resume_check"))
    parser.add_argument("--set", nargs="*", default=[], help="ActiveLearning options to change, key=value (YAML)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    options = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    config = shrink(args.config, args.workdir / args.config.name, **options)  # a frozen copy: edits of the
    # original during the runs must not reach the resumed run
    result = run_pair(config.resolve(), args.workdir, args.kill_after_epoch)
    same_rounds = result["whole"]["rounds"] == result["resumed"]["rounds"]
    same_labeled = result["whole"]["labeled"] == result["resumed"]["labeled"]
    print(json.dumps({"config": str(args.config), "kill_after_epoch": args.kill_after_epoch,
                      "checkpoints_at_kill": result["checkpoints_at_kill"], "killed_after_s": result["killed_after_s"],
                      "wall_s": result["wall_s"], "rounds_csv_identical": same_rounds,
                      "labeled_json_identical": same_labeled, "whole": result["whole"]["rounds"],
                      "resumed": result["resumed"]["rounds"]}, indent=1))


if __name__ == "__main__":
    main()
