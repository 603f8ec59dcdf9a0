"""The shared active-learning table: per-round test accuracy, mean +- std over seeds.

Every method in :data:`METHODS` runs the same protocol of a :data:`SETTINGS` entry through
:class:`zerosum.callbacks.ActiveLearning` (one ``fit`` per seed); the script writes a markdown table
and a PNG learning curve (accuracy vs. labels, mean +- std band). Results are cached per
(setting, method, seed) in ``<out>/results.json``, so methods can be run in separate invocations
(each under ~10 minutes) and the table is rebuilt from everything run so far.

    python benchmarks/al_table.py --setting digits --methods random entropy --seeds 0 1 2
    python benchmarks/al_table.py --setting cifar10_jpg --methods random entropy   # needs data/cifar10
    python benchmarks/al_table.py --setting cifar10_jpg --table-only               # rebuild table + PNG

Adding a method: one entry in :data:`METHODS`: a strategy factory, optionally a module factory
(e.g. a module with its own networks) and pool options (e.g. ``unlabeled_stream=True``).

``cifar10_jpg`` is issue 3's protocol at CPU scale: small CNN, 1000 initial labels (random), +1000
per round, 5 rounds; to fit a shared 2-core CPU the pool is a seeded 10,000-image subset of the
training split, the test split a 2,000-image subset, the CNN has width 8 and each round trains
4 epochs from scratch.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import lightning as L
import torch

from zerosum.callbacks import ActiveLearning
from zerosum.datamodules import ActivePoolDataModule, DigitsDataModule, ImageFolderDataModule, VisionDataModule
from zerosum.modules import Classifier
from zerosum.query import (
    BALDStrategy,
    CoresetStrategy,
    EntropyStrategy,
    LeastConfidenceStrategy,
    MarginStrategy,
    QueryStrategy,
    RandomStrategy,
)


# ---- protocols ------------------------------------------------------------------------------------
@dataclass
class Setting:
    """One protocol: data, initial set, budget, rounds and the task model's size and optimiser."""

    datamodule: Callable[[int], VisionDataModule]  # seed -> datamodule
    initial: int
    budget: int
    rounds: int
    epochs_per_round: int
    width: int
    lr: float = 2e-3
    extra: dict[str, Any] = field(default_factory=dict)


SETTINGS: dict[str, Setting] = {
    "cifar10_jpg": Setting(
        datamodule=lambda seed: ImageFolderDataModule(
            root="data/cifar10", image_size=32, in_memory=True, mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616), batch_size=64, eval_batch_size=500, max_train_samples=10_000,
            max_test_samples=2_000, val_size=0.02),
        initial=1000, budget=1000, rounds=5, epochs_per_round=4, width=8),
    "digits": Setting(
        datamodule=lambda seed: DigitsDataModule(batch_size=32, eval_batch_size=256),
        initial=30, budget=30, rounds=5, epochs_per_round=15, width=16, lr=3e-3),
}


def classifier(setting: Setting, dm: VisionDataModule, dropout: float = 0.0) -> L.LightningModule:
    return Classifier(num_classes=dm.num_classes, in_channels=dm.in_channels, net="small_cnn",
                      net_args={"width": setting.width, "dropout": dropout},
                      optimizer=lambda p: torch.optim.Adam(p, lr=setting.lr))


# ---- methods: the registry other methods add their row to ----------------------------------------
@dataclass
class Method:
    """How to run one table row: ``strategy(setting, seed)``, ``module(setting, datamodule)`` and
    extra :class:`ActivePoolDataModule` options."""

    strategy: Callable[[Setting, int], QueryStrategy]
    module: Callable[[Setting, VisionDataModule], L.LightningModule] = classifier
    pool_kwargs: dict[str, Any] = field(default_factory=dict)


METHODS: dict[str, Method] = {
    "random": Method(lambda s, seed: RandomStrategy(seed=seed)),
    "entropy": Method(lambda s, seed: EntropyStrategy()),
    "least_confidence": Method(lambda s, seed: LeastConfidenceStrategy()),
    "margin": Method(lambda s, seed: MarginStrategy()),
    "coreset": Method(lambda s, seed: CoresetStrategy()),
    "bald": Method(lambda s, seed: BALDStrategy(samples=10), module=lambda s, dm: classifier(s, dm, dropout=0.3)),
}


# ---- SRAL and SRAL+Random (issue 5) --------------------------------------------------------------------
def sral_module(setting: Setting, dm: VisionDataModule) -> L.LightningModule:
    """SRAL with the row's task CNN as final learner and a same-size selection CNN; CPU-scale agent
    (hidden 64, replay warm-up 32, minibatch 32, Adam 1e-3; groups of 5 below 100 labels per round, else 10)."""
    from zerosum.modules import SRAL

    adam = lambda lr: (lambda p: torch.optim.Adam(p, lr=lr))  # noqa: E731
    return SRAL(num_classes=dm.num_classes, in_channels=dm.in_channels, net="small_cnn",
                net_args={"width": setting.width}, selection_net="small_cnn", selection_net_args={"width": setting.width},
                optimizer=adam(setting.lr), selection_optimizer=adam(setting.lr), actor_optimizer=adam(1e-3),
                critic_optimizer=adam(1e-3), group_size=5 if setting.budget < 100 else 10,
                actor_args={"hidden": 64}, critic_args={"hidden": 64}, replay_warmup=32, replay_batch_size=32)


def sral_strategy(pre_rank: str) -> Callable[[Setting, int], QueryStrategy]:
    """Small budget b = 0.3 x the round budget (the paper's 300 of 1000)."""
    from zerosum.query import SRALStrategy

    return lambda s, seed: SRALStrategy(small_budget=max(1, s.budget * 3 // 10), pre_rank=pre_rank,
                                        reward_val_size=500, probe_labeled=16, seed=seed)


METHODS["sral_random"] = Method(sral_strategy("random"), module=sral_module)
METHODS["sral"] = Method(sral_strategy("entropy"), module=sral_module)


# ---- VAAL (issue 4) ---------------------------------------------------------------------------------
def vaal_module(setting: Setting, dm: VisionDataModule) -> L.LightningModule:
    """VAAL with the row's task CNN; CPU-scale VAE (16 base channels; 4 blocks at 32 px, 2 on the 8 px
    digits) and a 5-layer discriminator of width 128. VAE and D use Adam 1e-3 (the paper's 5e-4 is for
    100-epoch rounds; these rounds are a few epochs)."""
    from zerosum.modules import VAAL

    adam = lambda lr: (lambda p: torch.optim.Adam(p, lr=lr))  # noqa: E731
    blocks = 4 if dm.image_size % 16 == 0 else 2
    return VAAL(num_classes=dm.num_classes, in_channels=dm.in_channels, image_size=dm.image_size, net="small_cnn",
                net_args={"width": setting.width}, latent_dim=32 if blocks == 4 else 16, vae_base_width=16,
                vae_num_blocks=blocks, disc_hidden_dim=128, disc_num_layers=5, task_optimizer=adam(setting.lr),
                vae_optimizer=adam(1e-3), disc_optimizer=adam(1e-3))


def vaal_strategy(setting: Setting, seed: int) -> QueryStrategy:
    from zerosum.query import VAALQuery

    return VAALQuery()


METHODS["vaal"] = Method(vaal_strategy, module=vaal_module, pool_kwargs={"unlabeled_stream": True})


# ---- running ---------------------------------------------------------------------------------------
def run_one(setting_name: str, method_name: str, seed: int, out_dir: str) -> list[dict]:
    """One active-learning experiment; returns the callback's per-round rows."""
    setting, method = SETTINGS[setting_name], METHODS[method_name]
    L.seed_everything(seed, verbose=False)
    dm = setting.datamodule(seed)
    pool = ActivePoolDataModule(dm, initial_labeled=setting.initial, seed=seed, **method.pool_kwargs)
    module = method.module(setting, dm)
    al = ActiveLearning(method.strategy(setting, seed), rounds=setting.rounds,
                        epochs_per_round=setting.epochs_per_round, budget=setting.budget,
                        output_dir=os.path.join(out_dir, "runs", f"{method_name}_seed{seed}"))
    trainer = L.Trainer(callbacks=[al], accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, **setting.extra)
    trainer.fit(module, pool)
    return al.history


def load_results(path: str) -> dict:
    return json.load(open(path)) if os.path.exists(path) else {}


def save_results(path: str, results: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


def summarise(results: dict, methods: Optional[list[str]] = None) -> tuple[list[int], dict[str, torch.Tensor]]:
    """Labels per round and, per method, a (seeds x rounds) accuracy tensor."""
    table, labels = {}, None
    for name, by_seed in results.items():
        if methods and name not in methods:
            continue
        runs = [r for r in by_seed.values() if r]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        labels = [row["labeled"] for row in runs[0][:n]]
        table[name] = torch.tensor([[row["test_acc"] for row in r[:n]] for r in runs]) * 100
    return labels or [], table


def markdown(setting_name: str, labels: list[int], table: dict[str, torch.Tensor]) -> str:
    head = f"| method ({setting_name}, test acc. %) | seeds | " + " | ".join(f"{n} labels" for n in labels) + " |"
    lines = [head, "|" + "---|" * (len(labels) + 2)]
    for name, acc in table.items():
        std = acc.std(0, unbiased=True) if len(acc) > 1 else torch.zeros(acc.shape[1])
        cells = [f"{m:.1f} ± {s:.1f}" for m, s in zip(acc.mean(0).tolist(), std.tolist())]
        lines.append(f"| {name} | {len(acc)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(path: str, setting_name: str, labels: list[int], table: dict[str, torch.Tensor]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, acc in table.items():
        mean = acc.mean(0)
        std = acc.std(0) if len(acc) > 1 else torch.zeros_like(mean)
        ax.plot(labels, mean, "o-", label=f"{name} (n={len(acc)})")
        ax.fill_between(labels, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("labeled samples")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"active learning, {setting_name}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", choices=sorted(SETTINGS), default="digits")
    p.add_argument("--methods", nargs="+", default=["random", "entropy", "least_confidence", "margin"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", default=None, help="default: outputs/al_table/<setting>")
    p.add_argument("--rerun", action="store_true", help="ignore cached results of these runs")
    p.add_argument("--table-only", action="store_true", help="only rebuild the table and plot")
    args = p.parse_args()
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    out = args.out or os.path.join("outputs", "al_table", args.setting)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "results.json")
    results = load_results(path)
    if not args.table_only:
        for method in args.methods:
            for seed in args.seeds:
                if not args.rerun and results.get(method, {}).get(str(seed)):
                    continue
                t0 = time.perf_counter()
                rows = run_one(args.setting, method, seed, out)
                results = load_results(path)  # another invocation may have written meanwhile
                results.setdefault(method, {})[str(seed)] = rows
                save_results(path, results)
                accs = " ".join(f"{r['test_acc'] * 100:.1f}" for r in rows)
                print(f"{args.setting} {method} seed {seed}: {accs}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    labels, table = summarise(results)
    md = markdown(args.setting, labels, table)
    open(os.path.join(out, "table.md"), "w").write(md + "\n")
    plot(os.path.join(out, "learning_curve.png"), args.setting, labels, table)
    print(md)
    print(f"wrote {out}/table.md and {out}/learning_curve.png")


if __name__ == "__main__":
    main()
