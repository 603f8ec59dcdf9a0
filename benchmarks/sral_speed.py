"""SRAL's selection cost against entropy's query, measured in the same run, interleaved.

Goal (issue 15): one SRAL selection (``configs/sral/<setting>.yaml``, the table's row) within 10x the time
of one entropy query (``configs/active/entropy_<setting>.yaml``) on the same pool, at the ``cifar10_jpg``
setting of ``benchmarks/al_table.py``. Both configs are instantiated through the CLI (the same data, the
same initial labeled set); the classifiers are first trained for ``--train-steps`` steps so the
entropies (and SRAL's walk) are those of trained networks. Each repeat times an entropy query, then an
SRAL selection, on the same pool state; the ratio of the medians is printed, with SRAL's time split
into rankings, walk (actions, rewards, DDPG updates) and retraining, and the walk's step and
DDPG-update counts.

    python benchmarks/sral_speed.py --data-root /tmp/cifar10                # cifar10_jpg
    python benchmarks/sral_speed.py --setting digits --repeats 5

Timings on a shared machine vary: the ratio, measured interleaved, is what is meant to be compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Optional

import lightning as L
import torch

from zerosum.callbacks import ActiveLearning
from zerosum.cli import ZerosumCLI, ZerosumParser
from zerosum.query import EntropyStrategy
from zerosum.query.sral import SRALStrategy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Instantiated(ZerosumCLI):
    """The CLI's ``fit`` up to the objects: the trainer, module and datamodule are built, nothing runs."""

    def _run_subcommand(self, subcommand: str) -> None:
        pass


def instantiate(config: str, seed: int, data_root: Optional[str]):
    """(module, pool datamodule, ActiveLearning callback) of a shipped config, nothing run."""
    args = ["fit", "--config", os.path.join(ROOT, config), "--seed_everything", str(seed), "--trainer.logger", "false",
            "--data.init_args.seed", str(seed)]
    if data_root:
        args += ["--data.init_args.datamodule.init_args.root", data_root]
    cli = Instantiated(L.LightningModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                       parser_class=ZerosumParser, save_config_callback=None, auto_configure_optimizers=False,
                       args=args)
    active = next(c for c in cli.trainer.callbacks if isinstance(c, ActiveLearning))
    return cli.model, cli.datamodule, active


class Timed:
    """Wraps an object's method and sums the seconds spent in it."""

    def __init__(self, owner, name: str):
        self.seconds, self.original = 0.0, getattr(owner, name)
        setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.original(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0


def train(module: L.LightningModule, pool, steps: int) -> None:
    """``steps`` training batches of ``module`` on the pool's labeled set (cycled; no callbacks, no logger)."""
    pool.batches_per_epoch = steps
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    trainer.fit(module, pool)
    pool.batches_per_epoch = None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", choices=["cifar10_jpg", "digits"], default="cifar10_jpg")
    p.add_argument("--data-root", default=None, help="image folder replacing the configs' data root")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    task, pool, entropy_al = instantiate(f"configs/active/entropy_{args.setting}.yaml", args.seed, args.data_root)
    sral, sral_pool, sral_al = instantiate(f"configs/sral/{args.setting}.yaml", args.seed, args.data_root)
    strategy = sral_al.strategy
    assert isinstance(strategy, SRALStrategy) and isinstance(entropy_al.strategy, EntropyStrategy)
    pool.setup("fit")
    sral_pool.setup("fit")
    if not torch.equal(pool.labeled_round, sral_pool.labeled_round):
        raise RuntimeError("the entropy and SRAL configs of this setting start from different pools")
    budget = entropy_al.budget
    t0 = time.perf_counter()
    train(task, pool, args.train_steps)
    train(sral, sral_pool, args.train_steps)
    print(f"{args.setting}: pool {pool.num_unlabeled} unlabeled, budget {budget}, small budget {strategy.small_budget}, "
          f"group {sral.group_size}, reward on {min(strategy.reward_val_size, len(sral_pool.datamodule.val_set))} "
          f"validation images; classifiers trained {args.train_steps} steps ({time.perf_counter() - t0:.0f} s)")
    rank, walk, retrain = Timed(strategy, "_rank"), Timed(strategy, "_walk"), Timed(strategy, "_retrain")
    entropy_s, sral_s = [], []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        entropy_al.strategy.select(None, task, pool, budget)
        entropy_s.append(time.perf_counter() - t0)
        before = rank.seconds, walk.seconds, retrain.seconds
        t0 = time.perf_counter()
        strategy.select(None, sral, sral_pool, budget)
        sral_s.append(time.perf_counter() - t0)
        parts = [now - was for now, was in zip((rank.seconds, walk.seconds, retrain.seconds), before)]
        m = strategy.round_metrics()
        print(f"repeat {r}: entropy {entropy_s[-1]:.2f} s, SRAL {sral_s[-1]:.2f} s (rankings {parts[0]:.1f}, "
              f"walk {parts[1]:.1f}, retraining {parts[2]:.1f}; {m['sral_steps']:.0f} steps, "
              f"{m['sral_ddpg_updates']:.0f} DDPG updates; reward {m['sral_reward_mean']:+.2f} +- "
              f"{m['sral_reward_sd']:.2f} (se {m['sral_reward_se']:.2f})), ratio {sral_s[-1] / entropy_s[-1]:.1f}x",
              flush=True)
    e, s = statistics.median(entropy_s), statistics.median(sral_s)
    print(f"median: entropy {e:.2f} s, SRAL {s:.2f} s, SRAL / entropy = {s / e:.1f}x (goal <= 10x; shared machine)")


if __name__ == "__main__":
    main()
