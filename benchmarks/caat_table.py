"""CAAT vs TRADES vs PGD-AT vs standard training under pair-flip label noise and a long tail, at CPU scale.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/caat_table.py --setting digits --seeds 0 1 2 3 4
    python benchmarks/caat_table.py --setting cifar10_jpg --root /tmp/cifar10 --seeds 0
    python benchmarks/caat_table.py --setting digits --table-only      # rebuild table + picture

A fair comparison, following the official CAAT code (xiaolingzhou98/CAAT) for the protocol:

- every method starts from the same warm start (the official ``hot_start.pt``): ``--warmup`` epochs of
  standard training on the scenario's training set, cached once per (setting, scenario, seed);
- then ``--epochs`` epochs of the method with the same optimizer (SGD, momentum 0.9, wd 5e-4), the same
  training radius (L-inf 10/255, CAAT's official radius, step 2/255) and ``--attack-steps`` steps for
  every attack (official 10); TRADES uses beta 6 (its paper), CAAT beta 1.5 (official);
- CAAT as published: the official meta objective, adaptive per-class bounds and weights from the
  class-wise errors on the clean meta set (official), meta-net temperature 0.001; the meta step
  interval is scaled so that each epoch has about as many meta steps as the official run (7 per epoch);
- as in the official ``frl_train``, CAAT's per-class bounds get their first update from the warm-started
  model's validation errors before the first CAAT epoch (then one after every epoch);
- the meta set (``meta_per_class`` clean images per class) is removed from every method's training set;
- evaluation: PGD-20 L-inf 8/255 (step 2/255, uniform start, official ``configs1``) on the test split:
  average and worst-class natural and robust error (:class:`zerosum.callbacks.ClassRobustness`).

``--methods`` also takes the ablations of ``ABLATIONS`` (TRADES at CAAT's beta 1.5, CAAT without the
adaptive bounds, CAAT with a soft meta-net at temperature 1), and every CAAT run records what its
meta-net and bounds did (:class:`CAATProbe`; the "CAAT diagnosis" table): which samples get the
adversarial term, whether the meta-net moved away from its random initialisation, the radii per epoch.

The seeds change the data split (digits: which 20% are the test set; cifar10_jpg: which subset) as well
as the training, so the table reports mean +- standard error over seeds of each error, the worst-class
ones included. Results are cached per (setting, scenario, method, seed) in
``benchmarks/results/caat/<setting>/``; the table (markdown) and the picture are rebuilt from the cache.
Times per epoch are measured on a shared machine and compared with PGD-AT's in the same table only.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from functools import partial
from pathlib import Path

import lightning as L
import torch

from zerosum.atomic import atomic_file, atomic_write
from zerosum.callbacks import ClassRobustness
from zerosum.datamodules import DigitsDataModule, ImageFolderDataModule, ScenarioDataModule
from zerosum.modules import CAAT, TRADES, AdversarialTraining
from zerosum.inference import eval_mode
from zerosum.modules.caat import load_net_weights

SCENARIOS = {"pair20": dict(noise="pair", noise_rate=0.2), "lt10": dict(imbalance_factor=10)}
METHODS = ("standard", "pgdat", "trades", "caat")
#: ablations that locate CAAT's gap to TRADES (not run by default): TRADES at CAAT's beta 1.5; CAAT
#: with class-identifying meta-net features (last epoch's class loss, observed label share; the default
#: before it followed the official code) alone, without the adaptive per-class bounds, and with a soft
#: meta-net (temperature 1) that can learn, with those features (caat_temp1) or the official ones (caat_soft)
_CLASSFEAT = dict(class_features="last_epoch")
ABLATIONS = {"trades_beta1p5": ("trades", dict(beta=1.5)), "caat_classfeat": ("caat", _CLASSFEAT),
             "caat_nobounds": ("caat", dict(_CLASSFEAT, adaptive_bounds=False)),
             "caat_temp1": ("caat", dict(_CLASSFEAT, meta_temperature=1.0)),
             "caat_soft": ("caat", dict(meta_temperature=1.0))}  # official class features, a meta-net that can learn
ALL_METHODS = METHODS + tuple(ABLATIONS)
TRAIN_EPS, STEP = 10 / 255, 2 / 255
SETTINGS = {
    # digits: 16x16 grey digits, SmallCNN width 16; 10 meta images per class
    "digits": dict(net="small_cnn", net_args={"width": 16}, batch=64, meta_per_class=10, lr=0.01, warmup_lr=0.05),
    # a CIFAR-10 JPEG subset: 5000 training images (4900 after the meta set), 2000 test images, at 16 px
    # with a SmallCNN of width 16 (at 32 px and width 32 one PGD-AT epoch is ~16x the work: hours per row
    # on one CPU core)
    "cifar10_jpg": dict(net="small_cnn", net_args={"width": 16}, batch=128, meta_per_class=10, lr=0.01,
                        warmup_lr=0.05, image_size=16),
}


def make_data(setting: str, scenario: str, seed: int, combine_meta: bool, root: str) -> ScenarioDataModule:
    p = SETTINGS[setting]
    if setting == "digits":
        inner = DigitsDataModule(image_size=16, channels=1, batch_size=p["batch"], normalize=False, seed=seed)
    else:
        inner = ImageFolderDataModule(root, image_size=p["image_size"], in_memory=True, batch_size=p["batch"],
                                      normalize=False, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                                      max_train_samples=5000, max_test_samples=2000, val_size=500, seed=seed)
    return ScenarioDataModule(inner, meta_per_class=p["meta_per_class"], combine_meta=combine_meta, seed=seed,
                              validate_on="meta", **SCENARIOS[scenario])


def sgd(lr: float):
    return partial(torch.optim.SGD, lr=lr, momentum=0.9, weight_decay=5e-4)


def quiet_trainer(epochs: int, callbacks=(), validate: bool = False) -> L.Trainer:
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     limit_val_batches=None if validate else 0, inference_mode=False, callbacks=list(callbacks))


def warm_start(setting: str, scenario: str, seed: int, epochs: int, root: str, cache: Path) -> str:
    """Standard training on the scenario's training set (the official warm start), cached."""
    path = cache / f"warm_{setting}_{scenario}_s{seed}_e{epochs}.ckpt"
    if path.exists():
        return str(path)
    p = SETTINGS[setting]
    L.seed_everything(seed, verbose=False)
    dm = make_data(setting, scenario, seed, combine_meta=False, root=root)
    model = AdversarialTraining(dm.num_classes, dm.in_channels, net=p["net"], net_args=p["net_args"], eps=0.0,
                                eval_eps=0.0, optimizer=sgd(p["warmup_lr"]), data_mean=dm.mean, data_std=dm.std)
    quiet_trainer(epochs).fit(model, dm)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        torch.save({"state_dict": model.state_dict()}, tmp)
    return str(path)


def make_model(setting: str, method: str, dm: ScenarioDataModule, steps: int, warm: str, batches_per_epoch: int):
    p = SETTINGS[setting]
    common = dict(num_classes=dm.num_classes, in_channels=dm.in_channels, net=p["net"], net_args=p["net_args"],
                  data_mean=dm.mean, data_std=dm.std, optimizer=sgd(p["lr"]))
    method, overrides = ABLATIONS.get(method, (method, {}))
    if method == "caat":  # official settings; the meta interval keeps ~7 meta steps per epoch (official: 367/50)
        return CAAT(**common, adv_eps=TRAIN_EPS, anti_eps=TRAIN_EPS, adv_step_size=STEP, anti_step_size=STEP,
                    adv_steps=steps, anti_steps=steps, eval_steps=20, init_checkpoint=warm,
                    meta_interval=max(1, round(batches_per_epoch / 7.3)), **overrides)
    if method == "trades":
        model = TRADES(**common, **{"beta": 6.0, **overrides}, eps=TRAIN_EPS, step_size=STEP, steps=steps)
    else:
        model = AdversarialTraining(**common, norm="linf", eps=0.0 if method == "standard" else TRAIN_EPS, steps=steps,
                                    step_size=STEP, random_start="uniform", eval_eps=0.0)
    load_net_weights(model.net.net, warm)
    return model


class EpochTimer(L.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.times.append(time.perf_counter() - self._t)


class CAATProbe(L.Callback):
    """What CAAT's meta-net and adaptive bounds do during a run (the diagnosis of CAAT vs TRADES).

    Per epoch: the share of clean and of label-flipped training samples whose real-step weight
    ``a`` (clean + adversarial terms) exceeds 1/2 (the rest train on the anti-adversarial term only),
    the per-class radius multipliers and CE/KL weights in force, the validation class-wise errors.
    Per meta step: the share of meta-net outputs that are not saturated (min(a, b) > 1e-3; only those
    pass a meta-gradient through the temperature-T softmax) and the norm of the meta-gradient
    (weight decay excluded). At the end: how many training samples the trained meta-net assigns to
    the same side as the untrained one, both with batch statistics of the whole training set (as in
    training: the official meta-net is never in eval mode)."""

    def __init__(self, is_noisy: torch.Tensor):
        self.is_noisy = is_noisy.bool()
        self.epochs: list[dict] = []
        self.meta_steps: list[dict] = []
        self._outputs: list[torch.Tensor] = []
        self._grad_sq = 0.0

    def on_fit_start(self, trainer, pl_module):
        self.initial_meta_net = copy.deepcopy(pl_module.meta_net)
        pl_module.meta_net.register_forward_hook(lambda m, i, out: self._outputs.append(out))
        for p in pl_module.meta_net.parameters():
            p.register_hook(self._add_grad)

    def _add_grad(self, grad):
        self._grad_sq += float(grad.detach().pow(2).sum())

    def on_train_epoch_start(self, trainer, pl_module):
        self._record_validation(trainer)
        self._a_sum, self._a_count = torch.zeros(2), torch.zeros(2)  # [clean, noisy]
        self.epochs.append({"epoch": trainer.current_epoch, "eps_multipliers": pl_module.eps_multipliers.tolist(),
                            "ce_weights": pl_module.ce_weights.tolist(), "kl_weights": pl_module.kl_weights.tolist()})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        for out in self._outputs:
            if out.requires_grad:  # the meta step's weights
                a = out[:, 0].detach()
                self.meta_steps.append({"unsaturated": float((torch.minimum(a, 1 - a) > 1e-3).float().mean()),
                                        "grad_norm": self._grad_sq ** 0.5})
        real = [o for o in self._outputs if not o.requires_grad]
        if real:
            noisy = self.is_noisy[batch["train"][2].cpu()].long()
            chosen = (real[-1][:, 0].detach().cpu() > 0.5).float()
            self._a_sum += torch.bincount(noisy, weights=chosen, minlength=2)
            self._a_count += torch.bincount(noisy, minlength=2).float()
        self._outputs.clear()
        self._grad_sq = 0.0

    def on_train_epoch_end(self, trainer, pl_module):
        share = (self._a_sum / self._a_count.clamp_min(1)).tolist()
        self.epochs[-1].update(share_a_clean=share[0], share_a_noisy=share[1] if self._a_count[1] > 0 else None)

    def on_train_end(self, trainer, pl_module):
        self._record_validation(trainer)

    def _record_validation(self, trainer) -> None:
        """The validation after an epoch (logged by CAAT after the callbacks' hooks) into its record."""
        m = trainer.callback_metrics
        if self.epochs:
            self.epochs[-1].update({f"val_{k}": float(m[f"val/caat_class_errors/{k}"]) for k in
                                    ("natural_worst", "boundary_worst", "robust_avg", "robust_worst")
                                    if f"val/caat_class_errors/{k}" in m})

    @torch.no_grad()
    def final(self, model, x: torch.Tensor, y: torch.Tensor) -> dict:
        with eval_mode(model.net):
            zeta = model.features_of(model.net(x), y)
        trained, untrained = copy.deepcopy(model.meta_net).train(), copy.deepcopy(self.initial_meta_net).train()
        a, a0 = trained(zeta)[:, 0], untrained(zeta)[:, 0]
        noisy = self.is_noisy
        return {"share_a_clean": float((a[~noisy] > 0.5).float().mean()),
                "share_a_noisy": float((a[noisy] > 0.5).float().mean()) if noisy.any() else None,
                "same_side_as_untrained_meta_net": float(((a > 0.5) == (a0 > 0.5)).float().mean()),
                "meta_steps": len(self.meta_steps),
                "unsaturated_mean": sum(s["unsaturated"] for s in self.meta_steps) / max(1, len(self.meta_steps)),
                "meta_grad_norm_mean": sum(s["grad_norm"] for s in self.meta_steps) / max(1, len(self.meta_steps)),
                "initial_bounds": getattr(self, "initial_bounds", None), "epochs": self.epochs}


def run_one(setting: str, scenario: str, method: str, seed: int, epochs: int, warmup: int, steps: int, root: str,
            cache: Path) -> dict:
    warm = warm_start(setting, scenario, seed, warmup, root, cache)
    is_caat = ABLATIONS.get(method, (method,))[0] == "caat"
    L.seed_everything(seed, verbose=False)
    dm = make_data(setting, scenario, seed, combine_meta=is_caat, root=root)
    dm.setup("fit")
    batches = len(dm.data.loader(dm.train_set, train=True))
    model = make_model(setting, method, dm, steps, warm, batches)
    timer = EpochTimer()
    robustness = ClassRobustness(eps=8 / 255, step_size=2 / 255, steps=20, splits=("test",))
    probe = CAATProbe(dm.is_noisy) if is_caat else None
    if is_caat and model.hparams.adaptive_bounds:
        # official frl_train: the bounds are updated from the warm-started model's validation errors
        # before the first CAAT epoch (then after every epoch)
        quiet_trainer(epochs, validate=True).validate(model, dm, verbose=False)
        probe.initial_bounds = {"eps_multipliers": model.eps_multipliers.tolist(),
                                "kl_weights": model.kl_weights.tolist()}
    trainer = quiet_trainer(epochs, [timer, robustness] + ([probe] if probe else []), validate=is_caat)  # CAAT's bounds need validation
    trainer.fit(model, dm)
    trainer.test(model, datamodule=dm, verbose=False)
    res = robustness.last["test"]
    out = {k: float(res[k]) for k in ("natural_avg", "natural_worst", "robust_avg", "robust_worst")}
    out["per_class_natural"] = [float(v) for v in res["natural"]]
    out["per_class_robust"] = [float(v) for v in res["robust"]]
    out["test_count"] = int(sum(len(b[1]) for b in dm.test_dataloader()))
    out["sec_per_epoch"] = sum(timer.times) / len(timer.times)
    out["scenario"] = dm.scenario
    if is_caat:
        out["eps_multipliers"] = model.eps_multipliers.tolist()
        out["ce_weights"], out["kl_weights"] = model.ce_weights.tolist(), model.kl_weights.tolist()
        x = torch.stack([dm.train_set_eval[i][0] for i in range(len(dm.train_set_eval))])
        out["probe"] = probe.final(model, x, dm.targets)
    return out


KEYS = ("natural_avg", "natural_worst", "robust_avg", "robust_worst")


def mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else float("nan")
    return mean, se


def collect(results: dict, scenario: str, method: str) -> list[dict]:
    return [v for k, v in sorted(results.items()) if k.startswith(f"{scenario}/{method}/")]


def table(results: dict, setting: str) -> str:
    lines = [f"### CAAT table ({setting}; test error %, PGD-20 L-inf 8/255; mean +- s.e. over seeds; one seed: "
             "+- the binomial s.e. of the test estimate, marked b)", "",
             "| scenario | method | seeds | test imgs/class | nat avg | nat worst | rob avg | rob worst | s/epoch | x PGD-AT |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        pgdat = collect(results, scenario, "pgdat")
        t_ref = mean_se([r["sec_per_epoch"] for r in pgdat])[0] if pgdat else None
        for method in ALL_METHODS:
            runs = collect(results, scenario, method)
            if not runs:
                continue
            per_class = sum(r["test_count"] for r in runs) / len(runs) / 10
            cells = []
            for key in KEYS:
                m, se = mean_se([100 * r[key] for r in runs])
                if len(runs) == 1:  # one seed: the binomial s.e. of the test estimate (marked b)
                    n = per_class * (10 if key.endswith("avg") else 1)
                    cells.append(f"{m:.1f} +- {100 * math.sqrt(m / 100 * (1 - m / 100) / n):.1f}b")
                else:
                    cells.append(f"{m:.1f} +- {se:.1f}")
            t = mean_se([r["sec_per_epoch"] for r in runs])[0]
            rel = f"{t / t_ref:.2f}" if t_ref else "-"
            lines.append(f"| {scenario} | {method} | {len(runs)} | {per_class:.0f} | " + " | ".join(cells)
                         + f" | {t:.1f} | {rel} |")
    return "\n".join(lines + diagnosis(results))


def diagnosis(results: dict) -> list[str]:
    """What CAAT's meta-net and bounds did in each probed run (:class:`CAATProbe`)."""
    rows = [(k, v) for k, v in sorted(results.items()) if "probe" in v]
    if not rows:
        return []
    lines = ["", "#### CAAT diagnosis (training set after the last epoch; meta-net with batch statistics as in training)", "",
             "| run | share a>1/2 clean | share a>1/2 flipped | same side as untrained meta-net | meta steps "
             "| unsaturated outputs | max radius multiplier (class) | rob worst class |",
             "|---|---|---|---|---|---|---|---|"]
    for key, r in rows:
        p = r["probe"]
        mult = r["eps_multipliers"]
        worst = max(range(len(r["per_class_robust"])), key=lambda c: r["per_class_robust"][c])
        noisy = "-" if p["share_a_noisy"] is None else f"{p['share_a_noisy']:.2f}"
        lines.append(f"| {key} | {p['share_a_clean']:.2f} | {noisy} | {p['same_side_as_untrained_meta_net']:.2f} "
                     f"| {p['meta_steps']} | {100 * p['unsaturated_mean']:.1f}% | {max(mult):.2f} ({mult.index(max(mult))}) "
                     f"| {100 * r['robust_worst']:.0f} ({worst}) |")
    return lines


def plot(results: dict, setting: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(6 * len(SCENARIOS), 3.8), squeeze=False)
    width = 0.8 / len(METHODS)
    for ax, scenario in zip(axes[0], SCENARIOS):
        for j, method in enumerate(METHODS):
            runs = collect(results, scenario, method)
            if not runs:
                continue
            stats = [mean_se([100 * r[k] for r in runs]) for k in KEYS]
            xs = [i + width * (j - (len(METHODS) - 1) / 2) for i in range(len(KEYS))]
            ax.bar(xs, [m for m, _ in stats], width=width, yerr=[0 if math.isnan(se) else se for _, se in stats],
                   capsize=2, label=f"{method} (n={len(runs)})")
        ax.set_xticks(range(len(KEYS)), ["natural\navg", "natural\nworst class", "robust\navg", "robust\nworst class"])
        ax.set_ylabel("test error (%)")
        ax.set_title(f"{setting}, {scenario}: PGD-20 8/255 (lower is better; s.e. over seeds)", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", default="digits", choices=sorted(SETTINGS))
    parser.add_argument("--root", default="data/cifar10", help="ImageFolder root of cifar10_jpg")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=ALL_METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each method after the warm start")
    parser.add_argument("--warmup", type=int, default=10, help="epochs of the shared standard warm start")
    parser.add_argument("--attack-steps", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/caat")
    parser.add_argument("--cache", default="outputs/caat_table", help="warm-start checkpoints")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table and picture from the cache")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out) / args.setting
    out.mkdir(parents=True, exist_ok=True)
    tag = f"e{args.epochs}_w{args.warmup}_k{args.attack_steps}"
    results = {}
    for path in sorted(out.glob(f"*_{tag}.json")):
        scenario, rest = path.stem[: -len(tag) - 1].split("_", 1)
        method, seed = rest.rsplit("_", 1)  # method names may contain "_"
        results[f"{scenario}/{method}/{seed}"] = json.loads(path.read_text())
    for seed in [] if args.table_only else args.seeds:
        for scenario in args.scenarios:
            for method in args.methods:
                path = out / f"{scenario}_{method}_s{seed}_{tag}.json"
                if path.exists():
                    continue
                t0 = time.perf_counter()
                row = run_one(args.setting, scenario, method, seed, args.epochs, args.warmup, args.attack_steps,
                              args.root, Path(args.cache))
                atomic_write(path, json.dumps(row, indent=1))
                results[f"{scenario}/{method}/s{seed}"] = row
                print(f"{scenario} {method} seed {seed}: " + ", ".join(f"{k} {100 * row[k]:.1f}" for k in KEYS)
                      + f" ({time.perf_counter() - t0:.0f}s)", flush=True)
    text = table(results, args.setting) + f"\n\nsettings: {tag} (epochs after warm start, warm-start epochs, attack steps)"
    atomic_write(out / f"caat_{args.setting}_{tag}.md", text + "\n")
    plot(results, args.setting, str(out / f"caat_{args.setting}_{tag}.png"))
    print(text)


if __name__ == "__main__":
    main()
