"""The shared active-learning tables: per-round test accuracy, mean +- std over seeds, and the labels
each method needs to reach a target accuracy (as Gal et al. 2017 report for MNIST).

Every row runs a **shipped config** through the ``zerosum`` CLI (``configs/active/<method>_<setting>.yaml``,
``configs/vaal/<setting>.yaml``, ``configs/sral/<setting>.yaml``), so the table is exactly the protocol
a user gets, and ``tests/callbacks/test_active_protocol.py`` checks that the configs of one setting
share it (initial set, budget, rounds, task net, optimizer, training length). Per seed ``s`` the
script sets ``seed_everything: s``, the pool's seed (initial labeled set) and the strategy's seed
(where it has one); the data split is fixed. Results are cached per (setting, method, seed) in
``benchmarks/results/al_table_<setting>.json`` with a hash of the config (a changed config is rerun),
so methods run in separate invocations and the table grows across sessions; the table and the
picture (mean +- std bands) are ``al_table_<setting>.{md,png}`` beside it.

    python benchmarks/al_table.py --setting digits --methods random entropy --seeds 0 1 2 3 4
    python benchmarks/al_table.py --setting cifar10_jpg --data-root /tmp/cifar10 --methods random --seeds 0 1 2
    python benchmarks/al_table.py --setting digits --table-only        # rebuild table + PNG from the cache

Adding a method: an entry in :data:`METHODS` (its config and, optionally, a function editing the
parsed config, e.g. SRAL+Random's ``pre_rank``). Engineer B owns the VAAL / SRAL entries.
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import yaml

from zerosum.atomic import atomic_write
from zerosum.callbacks.active_learning import config_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- settings -------------------------------------------------------------------------------------
@dataclass
class Setting:
    """A table: which configs (``{method}`` is filled in), the accuracy target of the labels-needed
    column, and the key of the data folder that ``--data-root`` replaces (None: embedded data)."""

    active_config: str
    vaal_config: str
    sral_config: str
    target: float
    root_key: Optional[str] = None


SETTINGS: dict[str, Setting] = {
    "digits": Setting("configs/active/{method}_digits.yaml", "configs/vaal/digits.yaml", "configs/sral/digits.yaml",
                      target=90.0),
    "cifar10_jpg": Setting("configs/active/{method}_cifar10_jpg.yaml", "configs/vaal/cifar10_jpg.yaml",
                           "configs/sral/cifar10_jpg.yaml", target=38.0, root_key="root"),
}


# ---- methods ----------------------------------------------------------------------------------------
@dataclass
class Method:
    """A table row: its config (``"active"``, ``"vaal"`` or ``"sral"``) and an optional edit of the
    parsed config (``edit(config_dict) -> None``)."""

    config: str = "active"
    edit: Optional[Callable[[dict], None]] = None
    label: Optional[str] = None
    notes: dict[str, Any] = field(default_factory=dict)


def _set_pre_rank(value: str) -> Callable[[dict], None]:
    def edit(cfg: dict) -> None:
        strategy = config_options(cfg)["strategy"]
        strategy.setdefault("init_args", {})["pre_rank"] = value
    return edit


METHODS: dict[str, Method] = {
    "random": Method(), "entropy": Method(), "least_confidence": Method(), "margin": Method(), "coreset": Method(),
    "bald": Method(), "batchbald": Method(), "power_bald": Method(),
    # engineer B's rows: the VAAL and SRAL configs of the setting
    "vaal": Method("vaal"),
    "sral": Method("sral", _set_pre_rank("entropy")),
    "sral_random": Method("sral", _set_pre_rank("random"), label="SRAL+Random"),
}


# ---- config handling --------------------------------------------------------------------------------
def config_path(setting: Setting, method_name: str) -> str:
    method = METHODS[method_name]
    templates = {"active": setting.active_config, "vaal": setting.vaal_config, "sral": setting.sral_config}
    template = templates[method.config]
    return os.path.join(ROOT, template.format(method=method_name))


def config_fingerprint(setting_name: str, method_name: str) -> str:
    """A hash of the row's config file (and of its edit): cached runs of an older config are rerun."""
    text = open(config_path(SETTINGS[setting_name], method_name)).read() + method_name
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def run_config(setting_name: str, method_name: str, seed: int, runs_dir: str, data_root: Optional[str]) -> list[dict]:
    """One experiment through the CLI; returns the callback's per-round rows."""
    from zerosum.callbacks import ActiveLearning
    from zerosum.cli import run

    setting, method = SETTINGS[setting_name], METHODS[method_name]
    cfg = yaml.safe_load(open(config_path(setting, method_name)))
    cfg = copy.deepcopy(cfg)
    cfg["seed_everything"] = seed
    cfg["data"]["init_args"]["seed"] = seed  # the initial labeled set
    al = config_options(cfg)
    strategy = al["strategy"]
    if strategy.get("class_path", "").rsplit(".", 1)[-1] in ("RandomStrategy", "BALDStrategy", "BatchBALDStrategy",
                                                             "StochasticBatchStrategy", "SRALStrategy"):
        strategy.setdefault("init_args", {})["seed"] = seed
    run_dir = os.path.join(runs_dir, f"{method_name}_seed{seed}")
    shutil.rmtree(run_dir, ignore_errors=True)
    al["output_dir"] = run_dir
    if method.edit is not None:
        method.edit(cfg)
    if setting.root_key and data_root:
        cfg["data"]["init_args"]["datamodule"]["init_args"][setting.root_key] = data_root
    trainer = cfg.setdefault("trainer", {})
    trainer.update(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    kept = [c for c in trainer.get("callbacks") or []  # (no checkpoints; no logger for a learning-rate monitor)
            if not str(c.get("class_path", "")).endswith(("ModelCheckpoint", "LearningRateMonitor"))]
    trainer.pop("callbacks", None)
    if kept:
        trainer["callbacks"] = kept
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(cfg, f)
    try:
        cli = run(["fit", "--config", f.name, "--test_after_fit", "false"])
    finally:
        os.unlink(f.name)
    callback = next(c for c in cli.trainer.callbacks if isinstance(c, ActiveLearning))
    return callback.history


# ---- cache, table, picture --------------------------------------------------------------------------
def load_results(path: str) -> dict:
    """The cache (entries of the previous format, plain row lists without a config hash, are dropped)."""
    raw = json.load(open(path)) if os.path.exists(path) else {}
    return {m: {s: v for s, v in by_seed.items() if isinstance(v, dict)} for m, by_seed in raw.items()}


def save_results(path: str, results: dict) -> None:
    atomic_write(path, json.dumps(results, indent=1))


def summarise(results: dict, methods: Optional[list[str]] = None) -> tuple[list[int], dict[str, torch.Tensor]]:
    """Labels per round and, per method, a (seeds x rounds) accuracy tensor (in %)."""
    table, labels = {}, None
    for name, by_seed in results.items():
        if methods and name not in methods:
            continue
        runs = [r["rows"] for r in by_seed.values() if r and r.get("rows")]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        labels = [row["labeled"] for row in runs[0][:n]]
        table[name] = torch.tensor([[row["test_acc"] for row in r[:n]] for r in runs], dtype=torch.float64) * 100
    return labels or [], table


def labels_to_reach(labels: list[int], acc: torch.Tensor, target: float) -> Optional[float]:
    """Labels at which the curve first reaches ``target`` (linear between rounds); None if never."""
    for j, a in enumerate(acc.tolist()):
        if a >= target:
            if j == 0:
                return float(labels[0])
            a0 = float(acc[j - 1])
            return labels[j - 1] + (target - a0) / (a - a0) * (labels[j] - labels[j - 1])
    return None


def markdown(setting_name: str, labels: list[int], table: dict[str, torch.Tensor], target: float) -> str:
    head = (f"| method ({setting_name}, test acc. %) | seeds | " + " | ".join(f"{n} labels" for n in labels)
            + f" | labels to reach {target:g}% (mean curve; per seed) |")
    lines = [head, "|" + "---|" * (len(labels) + 3)]
    for name, acc in table.items():
        std = acc.std(0, unbiased=True) if len(acc) > 1 else torch.zeros(acc.shape[1])
        cells = [f"{m:.1f} ± {s:.1f}" for m, s in zip(acc.mean(0).tolist(), std.tolist())]
        mean_need = labels_to_reach(labels, acc.mean(0), target)
        per_seed = [labels_to_reach(labels, a, target) for a in acc]
        reached = [v for v in per_seed if v is not None]
        need = f"{mean_need:.0f}" if mean_need is not None else f"> {labels[-1]}"
        spread = (f"{torch.tensor(reached).mean():.0f} ± {torch.tensor(reached).std() if len(reached) > 1 else 0:.0f}"
                  if reached else "-")
        label = METHODS[name].label if name in METHODS and METHODS[name].label else name
        lines.append(f"| {label} | {len(acc)} | " + " | ".join(cells)
                     + f" | {need} ({len(reached)}/{len(acc)} seeds reach it: {spread}) |")
    return "\n".join(lines)


def plot(path: str, setting_name: str, labels: list[int], table: dict[str, torch.Tensor], target: float,
         subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, acc in table.items():
        mean = acc.mean(0)
        std = acc.std(0) if len(acc) > 1 else torch.zeros_like(mean)
        style = dict(color="black", ls="--", lw=2) if name == "random" else dict(ls="-")
        line, = ax.plot(labels, mean, marker="o", label=f"{name} (n={len(acc)})", **style)
        ax.fill_between(labels, mean - std, mean + std, alpha=0.12, color=line.get_color())
    ax.axhline(target, color="gray", lw=0.8, ls=":")
    ax.text(labels[0], target, f" {target:g}%", va="bottom", color="gray", fontsize=8)
    ax.set_xlabel("labeled samples")
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.set_title(f"active learning on {setting_name}\n{subtitle}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def protocol_subtitle(setting: Setting) -> str:
    cfg = yaml.safe_load(open(os.path.join(ROOT, setting.active_config.format(method="random"))))
    al, data = config_options(cfg), cfg["data"]["init_args"]
    length = (f"{al['steps_per_round']} steps/round" if al.get("steps_per_round") else
              f"{al.get('epochs_per_round')} epochs/round")
    return f"{data['initial_labeled']} initial, +{al['budget']}/round, {al['rounds']} rounds, {length}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", choices=sorted(SETTINGS), default="digits")
    p.add_argument("--methods", nargs="+", default=["random", "entropy", "least_confidence", "margin"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"),
                   help="folder of al_table_<setting>.{json,md,png}")
    p.add_argument("--runs", default=None, help="run folders (default: outputs/al_table/<setting>)")
    p.add_argument("--data-root", default=None, help="image folder replacing the config's data root")
    p.add_argument("--rerun", action="store_true", help="ignore cached results of these runs")
    p.add_argument("--table-only", action="store_true", help="only rebuild the table and plot")
    args = p.parse_args()
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    setting = SETTINGS[args.setting]
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"al_table_{args.setting}")
    runs = args.runs or os.path.join("outputs", "al_table", args.setting)
    path = stem + ".json"
    results = load_results(path)
    if not args.table_only:
        for method in args.methods:
            fingerprint = config_fingerprint(args.setting, method)
            for seed in args.seeds:
                cached = results.get(method, {}).get(str(seed))
                if not args.rerun and cached and cached.get("config") == fingerprint:
                    continue
                t0 = time.perf_counter()
                rows = run_config(args.setting, method, seed, runs, args.data_root)
                with open(path + ".lock", "w") as lock:  # other invocations may write meanwhile
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    results = load_results(path)
                    results.setdefault(method, {})[str(seed)] = {"config": fingerprint, "rows": rows}
                    save_results(path, results)
                accs = " ".join(f"{r['test_acc'] * 100:.1f}" for r in rows)
                print(f"{args.setting} {method} seed {seed}: {accs}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    current = {m: {s: r for s, r in results[m].items() if r.get("config") == config_fingerprint(args.setting, m)}
               for m in METHODS if m in results and os.path.exists(config_path(setting, m))}
    stale = sorted(f"{m} seed {s}" for m in current for s in results[m] if s not in current[m])
    if stale:  # kept in the cache, left out of the table: another protocol
        print(f"note: not in the table, cached under an older config (rerun for the current protocol): {stale}")
    labels, table = summarise({m: by_seed for m, by_seed in current.items() if by_seed})
    md = markdown(args.setting, labels, table, setting.target)
    open(stem + ".md", "w").write(md + "\n")
    plot(stem + ".png", args.setting, labels, table, setting.target, protocol_subtitle(setting))
    print(md)
    print(f"wrote {stem}.md and {stem}.png")


if __name__ == "__main__":
    main()
