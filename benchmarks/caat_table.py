"""CAAT vs PGD-AT vs standard training under label noise and a long tail, at CPU scale.

For every (scenario, method, seed) the script trains one model on the scenario's training set and
reports, on the clean test split, the average and worst-class natural and robust error (PGD-20,
L-inf 8/255, :class:`zerosum.callbacks.ClassRobustness`), plus the mean wall time per training
epoch; CAAT's time per epoch is printed relative to PGD-AT's measured in the same invocation.
Results are cached in ``<out>/caat_<setting>.json``; a markdown table and a PNG are written next to it.

    python benchmarks/caat_table.py                                  # digits, both scenarios
    python benchmarks/caat_table.py --seeds 1 2                      # more seeds, added to the cache
    python benchmarks/caat_table.py --table-only                     # rebuild table + PNG
    python benchmarks/caat_table.py --setting cifar10_jpg --epochs 4  # needs data/cifar10

Settings: ``digits`` (16x16 grey digits, SmallCNN width 16, 15 epochs) and ``cifar10_jpg`` (a 5k
CIFAR-10 JPEG subset, PreActResNet-18 width 16). Scenarios: 20% pair noise ("pair20") and a long
tail with imbalance factor 10 ("lt10"); 10 clean meta images per class (CAAT only uses them, but
they are removed from every method's training set). All methods share the optimizer (SGD 0.05,
momentum 0.9, wd 5e-4) and the attack budget (``--attack-steps`` PGD steps per direction).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial

import lightning as L
import torch

from zerosum.callbacks import ClassRobustness
from zerosum.datamodules import DigitsDataModule, ImageFolderDataModule, ScenarioDataModule
from zerosum.modules import CAAT, AdversarialTraining

SCENARIOS = {"pair20": dict(noise="pair", noise_rate=0.2), "lt10": dict(imbalance_factor=10)}
METHODS = ("standard", "pgdat", "caat")


def make_data(setting: str, scenario: str, method: str) -> ScenarioDataModule:
    if setting == "digits":
        inner = DigitsDataModule(image_size=16, channels=1, batch_size=64, normalize=False)
    elif setting == "cifar10_jpg":
        inner = ImageFolderDataModule("data/cifar10", image_size=32, in_memory=True, batch_size=64, normalize=False,
                                      mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                                      max_train_samples=5000, max_test_samples=1000, val_size=500)
    else:
        raise ValueError(f"unknown setting {setting!r}; choose digits or cifar10_jpg")
    return ScenarioDataModule(inner, meta_per_class=10, combine_meta=method == "caat", seed=0, **SCENARIOS[scenario])


def make_model(setting: str, method: str, dm: ScenarioDataModule, steps: int):
    net, net_args = ("small_cnn", {"width": 16}) if setting == "digits" else ("preact_resnet18", {"width": 16})
    common = dict(num_classes=dm.num_classes, in_channels=dm.in_channels, net=net, net_args=net_args,
                  data_mean=dm.mean, data_std=dm.std,
                  optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=5e-4))
    if method == "caat":
        return CAAT(**common, adv_steps=steps, anti_steps=steps, meta_interval=5, meta_temperature=1.0,
                    meta_optimizer=partial(torch.optim.Adam, lr=1e-3, weight_decay=5e-4))
    eps = 0.0 if method == "standard" else 8 / 255
    return AdversarialTraining(**common, norm="linf", eps=eps, steps=steps, step_size=2 / 255,
                               random_start="uniform", eval_eps=0.0)


class EpochTimer(L.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.times.append(time.perf_counter() - self._t)


def run_one(setting: str, scenario: str, method: str, seed: int, epochs: int, steps: int) -> dict:
    L.seed_everything(seed, verbose=False)
    dm = make_data(setting, scenario, method)
    dm.setup("fit")
    model = make_model(setting, method, dm, steps)
    timer, robustness = EpochTimer(), ClassRobustness(eps=8 / 255, step_size=2 / 255, steps=20)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        inference_mode=False, callbacks=[timer, robustness])
    trainer.fit(model, dm)
    trainer.test(model, datamodule=dm, verbose=False)
    res = robustness.last["test"]
    out = {k: float(res[k]) for k in ("natural_avg", "natural_worst", "robust_avg", "robust_worst")}
    out["sec_per_epoch"] = sum(timer.times[1:]) / max(1, len(timer.times) - 1) if len(timer.times) > 1 else timer.times[0]
    if method == "caat":
        x = torch.stack([dm.train_set_eval[i][0] for i in range(len(dm.train_set_eval))])
        w = model.sample_weights(x, dm.targets)[:, 0]
        out["a_noisy"] = float(w[dm.is_noisy].mean()) if dm.is_noisy.any() else None
        out["a_clean"] = float(w[~dm.is_noisy].mean())
    return out


def table(results: dict, setting: str) -> str:
    lines = [f"### CAAT table ({setting}; test errors %, PGD-20 L-inf 8/255; mean over seeds)", "",
             "| scenario | method | nat avg | nat worst | rob avg | rob worst | s/epoch | x PGD-AT time |",
             "|---|---|---|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        rows = {m: [v for k, v in results.items() if k.startswith(f"{scenario}/{m}/")] for m in METHODS}
        mean = lambda runs, key: sum(r[key] for r in runs) / len(runs)
        for m in METHODS:
            if not rows[m]:
                continue
            t = mean(rows[m], "sec_per_epoch")
            rel = f"{t / mean(rows['pgdat'], 'sec_per_epoch'):.2f}" if rows["pgdat"] else "-"
            lines.append(f"| {scenario} | {m} | " + " | ".join(f"{100 * mean(rows[m], k):.1f}" for k in
                         ("natural_avg", "natural_worst", "robust_avg", "robust_worst")) + f" | {t:.1f} | {rel} |")
    return "\n".join(lines)


def plot(results: dict, setting: str, path: str) -> None:
    """Grouped bars: natural / robust error, average and worst class, per scenario and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("natural_avg", "natural_worst", "robust_avg", "robust_worst")
    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(5 * len(SCENARIOS), 3.5), squeeze=False)
    for ax, scenario in zip(axes[0], SCENARIOS):
        for j, m in enumerate(METHODS):
            runs = [v for k, v in results.items() if k.startswith(f"{scenario}/{m}/")]
            if not runs:
                continue
            vals = [100 * sum(r[k] for r in runs) / len(runs) for k in keys]
            ax.bar([i + 0.27 * (j - 1) for i in range(len(keys))], vals, width=0.27, label=m)
        ax.set_xticks(range(len(keys)), [k.replace("_", "\n") for k in keys])
        ax.set_ylabel("test error (%)")
        ax.set_title(f"{setting}: {scenario}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", default="digits", choices=("digits", "cifar10_jpg"))
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--attack-steps", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table and PNG from the cache")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"caat_{args.setting}.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    for scenario in [] if args.table_only else args.scenarios:
        for method in args.methods:
            for seed in args.seeds:
                t0 = time.perf_counter()
                results[f"{scenario}/{method}/{seed}"] = run_one(args.setting, scenario, method, seed, args.epochs,
                                                                 args.attack_steps)
                print(f"{scenario} {method} seed {seed}: {results[f'{scenario}/{method}/{seed}']} "
                      f"({time.perf_counter() - t0:.0f}s)", flush=True)
                json.dump(results, open(path, "w"), indent=1)
    text = table(results, args.setting)
    open(os.path.join(args.out, f"caat_{args.setting}.md"), "w").write(text + "\n")
    plot(results, args.setting, os.path.join(args.out, f"caat_{args.setting}.png"))
    print(text)


if __name__ == "__main__":
    main()
