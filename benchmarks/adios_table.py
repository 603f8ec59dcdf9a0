"""CPU-scale reproduction of ADIOS's masking comparison (Shi et al. 2022, Table 1 and Sec. 4.2) on the
CIFAR-10 JPEG folder: SimCLR vs SimCLR+ADIOS vs SimCLR+ADIOS-s vs SimCLR+random (BEiT block) masks,
same encoder, data, augmentation and schedule; linear-probe and kNN accuracy of the final encoder on
the full test set; the mask diagnostics (coverage extremes, pairwise correlation, shuffled-mask gap)
of the last validation.

Sizing (2 CPU cores shared by six people, one thread per run, often a fifth of a core): 16 px images
(CIFAR-10 downsampled), a 5,000-image training subset (1,000 more for validation), a small CNN
encoder (width 16, 32-d features), batch 128, N = 4 masks, the official occlusion net at base width
16 (official ImageNet100-S: 32); an ADIOS step costs about 5 SimCLR steps here. Optimiser, learning rates,
weight decay, sparsity and entropy weights are the official ImageNet100-S SimCLR+ADIOS ones
(bash_files/training/imagenet100s/resnet18/simclr_adios.sh; SGD+LARS, eta 0.02, clipping, as the
official base.py defaults), warm-up scaled to the same fraction of training (10 of 500 epochs).

Every (setting, method, seed) run is cached in benchmarks/results/adios_table_cifar10_jpg.json as it
finishes, so the table grows over sittings; a run killed part-way (the end of a sitting) resumes from
its last finished epoch when the same command is run again; ``--report`` only prints the table, writes
its markdown and draws the mask grid of the ADIOS run (seed 0) from its checkpoint (where that checkpoint
is not on this machine, the grid drawn earlier stays).

    # length sweep, then the table at the length found (320 epochs), then the report of every length cached
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/adios_table.py --epochs 10 20 40 80 160 320 640 --methods simclr --seeds 0 1
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/adios_table.py --epochs 320 --seeds 0 1
    python benchmarks/adios_table.py --report
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/adios_table.py --collapse 80   # alpha 0: when do the masks collapse?

Length: SimCLR's linear probe at 10, 20, 40, 80, 160, 320, 640 epochs: 0.347, 0.378 (2 seeds), 0.409,
0.427 (2 seeds: 0.434, 0.421), 0.439 (0.431, 0.446), 0.461 (0.465, 0.456), 0.469 (0.464, 0.473); the gain
over the previous length, paired by seed: +0.035, +0.027, +0.025, +0.011, +0.022, +0.008. 80 -> 160 looked
like a plateau (inside the seed spread, seeds disagreeing) but 160 -> 320 was not (+0.022, both seeds up);
320 -> 640 is inside the spread again (+0.008 against 0.009: one seed flat at -0.001, the other +0.017),
with the gains per doubling falling. By this rule 320 epochs (12,480 steps) is where the probe stops
improving (the same rule misread 80 -> 160, so a 1280-epoch check would settle it), and the four-method
table is read there (the paper itself trains 400-500 epochs); the table also exists at 20, 80 and 160
epochs, and every length stays in the cache, in the report and in the length curve (``--report`` draws
it). One run of 320 epochs took about 120 minutes on one core (two runs at once) for ADIOS, 107 for
ADIOS-s, 45 for random masks (on a quieter machine) and about 70 for SimCLR (half of its 640-epoch 136).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

RESULTS = Path(__file__).parent / "results" / "adios_table_cifar10_jpg.json"
PICTURE = Path(__file__).parent / "results" / "adios_mask_grid_cifar10_jpg.png"
TABLE_MD = Path(__file__).parent / "results" / "adios_table_cifar10_jpg.md"
CURVE = Path(__file__).parent / "results" / "adios_length_cifar10_jpg.png"
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
SETTING = dict(image_size=16, train=5000, val=1000, batch=128, net="small_cnn", width=16, num_masks=4,
               lr=0.11127702230184772, mask_lr=0.014515024186652984, weight_decay=1e-4, alpha=0.9229467944410698,
               alpha_entropy=0.711773255433044, mask_base=16)
METHODS = {"simclr": "none", "adios": "adios", "adios_s": "adios_s", "random_block": "block"}


def setting_name() -> str:
    s = SETTING
    return (f"{s['image_size']}px_{s['train']}img_{s['net']}{s['width']}_N{s['num_masks']}_mask{s['mask_base']}"
            f"_lr{s['lr']:.3f}")


def setting_key(epochs: int) -> str:
    return f"{setting_name()}_e{epochs}"


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}


def runs_by_length() -> dict:
    """The cached runs as method -> epochs -> seed -> record."""
    runs: dict = {}
    for r in load_results()["runs"].values():
        runs.setdefault(r["method"], {}).setdefault(r["epochs"], {})[r["seed"]] = r
    return runs


def paired_mean_gap(acc: dict, base: dict) -> Optional[float]:
    """Mean over the seeds in both of acc[seed] - base[seed]; None if no seed is in both."""
    common = sorted(set(acc) & set(base))
    return statistics.mean(acc[k] - base[k] for k in common) if common else None


def save_result(key: str, record: dict) -> None:
    """Merge one run into the cache (re-read first: another sitting may have added runs), atomically."""
    from zerosum.atomic import atomic_write

    data = load_results()
    data["runs"][key] = record
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(RESULTS, json.dumps(data, indent=1, sort_keys=True))


def cifar_root(data_dir: Optional[str]) -> str:
    """The extracted CIFAR-10 JPEG folder (extracted once from /work/shared/data if needed)."""
    root = Path(data_dir or os.path.join(tempfile.gettempdir(), "zerosum_cifar10_jpg"))
    if not (root / "cifar10" / "train").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open("/work/shared/data/cifar10-jpg.tar.gz") as tar:
            tar.extractall(root)
    return str(root / "cifar10")


def datamodule(root: str, batch: Optional[int] = None):
    from zerosum.datamodules import ImageFolderDataModule
    from zerosum.transforms import SimCLRTransform

    s = {**SETTING, "batch": batch or SETTING["batch"]}
    # official augmentation defaults (src/args/dataset.py): jitter 0.8/0.8/0.8/0.2 with p 0.8, grey 0.2,
    # crop scale (0.08, 1); no blur below 64 px (zerosum's SimCLRTransform default)
    views = SimCLRTransform(s["image_size"], MEAN, STD, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)
    return ImageFolderDataModule(root, image_size=s["image_size"], mean=MEAN, std=STD, in_memory=True,
                                 batch_size=s["batch"], max_train_samples=s["train"], val_size=s["val"], num_workers=0,
                                 train_transform=views)


def build_model(method: str, epochs: int, **overrides):
    from zerosum.modules import ADIOS
    from zerosum.optim import spec

    s = {**SETTING, **overrides}
    lars = dict(momentum=0.9, weight_decay=s["weight_decay"], eta=0.02, clip_lr=True, exclude_bias_and_norm=True)
    return ADIOS(num_classes=10, in_channels=3, image_size=s["image_size"], net=s["net"], net_args={"width": s["width"]},
                 objective="simclr", objective_args={"proj_hidden_dim": 2048, "proj_output_dim": 128, "temperature": 0.2},
                 masking=METHODS[method], num_masks=s["num_masks"], alpha=s["alpha"], alpha_entropy=s["alpha_entropy"],
                 mask_net_args={"base_width": s["mask_base"], "norm": s.get("mask_norm", "instance")},
                 optimizer=spec("zerosum.optim.LARS", lr=s["lr"], **lars),
                 mask_optimizer=spec("zerosum.optim.LARS", lr=s["mask_lr"], **lars),
                 warmup_epochs=epochs * 10 / 500, warmup_start_lr=0.003, cosine=s.get("cosine", True))


@torch.no_grad()
def features(encoder, dataset, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    encoder.eval()
    xs, ys = [], []
    for i in range(0, len(dataset), batch):
        items = [dataset[j] for j in range(i, min(i + batch, len(dataset)))]
        x = torch.stack([it[0] for it in items])
        xs.append(encoder.features(x))
        ys.append(torch.as_tensor([int(it[1]) for it in items]))
    return torch.cat(xs), torch.cat(ys)


def linear_probe(train_h, train_y, test_h, test_y, weight_decay: float = 1e-4, steps: int = 200) -> float:
    """Multinomial logistic regression on standardised frozen features (full batch, L-BFGS)."""
    mu, sd = train_h.mean(0), train_h.std(0) + 1e-6
    a, b = (train_h - mu) / sd, (test_h - mu) / sd
    lin = torch.nn.Linear(a.shape[1], 10)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(a), train_y) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return float((lin(b).argmax(1) == test_y).float().mean())


KNN_KS = (5, 10, 20, 50, 100)  # the official main_knn.py sweep (cosine distance, backbone features)


def evaluate(encoder, dm) -> dict:
    """Linear probe and kNN (k = 20, cosine, temperature 0.07: the table's numbers) on the final
    encoder; ``knn_sweep`` holds k = 5..100 as the official kNN script sweeps them (not selected on)."""
    from zerosum.callbacks.knn_accuracy import knn_predict

    train_h, train_y = features(encoder, dm.train_set_eval)
    test_h, test_y = features(encoder, dm.test_set)
    sweep = {str(k): float((knn_predict(test_h, train_h, train_y, 10, k=k, temperature=0.07) == test_y).float().mean())
             for k in KNN_KS}
    return {"linear_acc": linear_probe(train_h, train_y, test_h, test_y), "knn_acc": sweep["20"], "knn_sweep": sweep,
            "test_images": len(test_y)}


def reevaluate(root: str) -> None:
    """Recompute the evaluation of cached runs from their exported encoders (``<run>/encoder.pt``)."""
    from zerosum.ssl import load_encoder

    dm = None
    for key, rec in load_results()["runs"].items():
        path = Path(rec["run_dir"]) / "encoder.pt"
        if "knn_sweep" in rec or not path.exists():
            continue
        if dm is None:
            dm = datamodule(root)
            dm.setup("fit")
        rec.update(evaluate(load_encoder(str(path)), dm))
        save_result(key, rec)
        print(f"[adios_table] re-evaluated {key}: linear {rec['linear_acc']:.3f} kNN {rec['knn_sweep']}", flush=True)


def run_one(method: str, seed: int, epochs: int, root: str, out: Path) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, Timer
    from lightning.pytorch.loggers import CSVLogger

    torch.set_num_threads(1)
    L.seed_everything(seed, workers=True)
    dm = datamodule(root)
    model = build_model(method, epochs)
    run_dir = out / setting_key(epochs) / f"{method}_s{seed}"
    timer = Timer()  # its elapsed training time is saved in the checkpoint: a resumed run counts every sitting
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, default_root_dir=str(run_dir),
                        logger=CSVLogger(str(run_dir), name="", version=""), enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10, num_sanity_val_steps=0,
                        callbacks=[ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), save_last=True), timer])
    # a run killed part-way (end of a sitting) resumes from its last epoch: model, optimisers, schedules
    last = run_dir / "checkpoints" / "last.ckpt"
    resumed = last.exists()
    timed_before = not resumed or "Timer" in torch.load(last, map_location="cpu", weights_only=False)["callbacks"]
    if resumed:
        print(f"[adios_table] resuming {run_dir.name} from {last}", flush=True)
    trainer.fit(model, dm, ckpt_path=str(last) if resumed else None)
    record = {"method": method, "seed": seed, "epochs": epochs, "steps": int(model.encoder_steps),
              "minutes": round(timer.time_elapsed("train") / 60, 2), "minutes_all_sittings": timed_before,
              "setting": dict(SETTING), "run_dir": str(run_dir), "collapsed_at": model.collapsed_at,
              "resumed": resumed}
    record.update({k.split("/", 1)[1]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/mask_")})
    start = time.perf_counter()
    record.update(evaluate(model.encoder, dm))
    record["eval_minutes"] = round((time.perf_counter() - start) / 60, 2)
    return record


#: The optimisation values of the official STL-10 SimCLR+ADIOS script (bash_files/training/stl10/resnet18/
#: simclr_adios.sh: N 6, --alpha_sparsity 0, --alpha_entropy 0, lr, mask_lr, weight decay, unet_norm gn), at
#: this table's 16 px scale, batch 64, constant learning rates.
STL10_SIMCLR_VALUES = dict(num_masks=6, alpha_entropy=0.0, lr=0.13234838295784523, mask_lr=0.01946841419435407,
                           weight_decay=8.504658547335148e-05, mask_norm="group", cosine=False)


def collapse_check(root: str, steps: int, alpha: float = 0.0, batch: int = 64) -> dict:
    """ADIOS with the sparsity penalty off (``alpha`` 0 and no entropy term), the official STL-10 SimCLR
    script's values, on this table's data at 16 px: per-step per-sample coverage of the largest mask
    and the step at which ADIOS reports the collapse (``collapsed_at``)."""
    import warnings

    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    class StopAtCollapse(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            trainer.should_stop = trainer.should_stop or pl_module.collapsed_at is not None

    torch.set_num_threads(1)
    L.seed_everything(0, workers=True)
    model = build_model("adios", 0, alpha=alpha, **STL10_SIMCLR_VALUES)
    with tempfile.TemporaryDirectory() as tmp:
        # two optimizer steps (encoder, occluder) per batch: max_steps counts both
        trainer = L.Trainer(max_steps=2 * steps, accelerator="cpu", devices=1, logger=CSVLogger(tmp, name="", version=""),
                            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                            log_every_n_steps=1, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[StopAtCollapse()])
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            trainer.fit(model, datamodule(root, batch))
        trainer.logger.save()
        rows = [line.split(",") for line in (Path(tmp) / "metrics.csv").read_text().splitlines()]
    col = rows[0].index("train/mask_cover_max")
    trace = [round(float(r[col]), 3) for r in rows[1:] if len(r) > col and r[col]]
    messages = [str(w.message) for w in seen if "collapsed" in str(w.message)]
    print(f"[collapse] STL-10 SimCLR script values, alpha={alpha}, batch {batch}: per-sample coverage of the largest "
          f"mask, steps 1, 11, 21, ...: {trace[::10]} (last: step {len(trace)}, {trace[-1] if trace else None})", flush=True)
    print(f"[collapse] collapsed_at={model.collapsed_at}; warning: {messages[0] if messages else None}", flush=True)
    return {"alpha": alpha, "steps": steps, "collapsed_at": model.collapsed_at, "cover_max_by_step": trace}


def claim(out: Path, key: str) -> bool:
    """Take ``key`` for this process (a pid file), so that several sittings or processes can grow the
    table side by side; a claim whose process is gone is taken over."""
    folder = out / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (key.replace("|", "__") + ".pid")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(path.read_text() or 0), 0)
            return False  # another live process runs it
        except PermissionError:
            return False
        except (ProcessLookupError, ValueError):
            path.unlink(missing_ok=True)
            return claim(out, key)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return "?"


def minutes_known(record: dict) -> bool:
    """Whether a run's minutes cover all its sittings: runs resumed from checkpoints written before the Timer
    callback was added count only their last sitting."""
    return record.get("minutes_all_sittings", not record.get("resumed", False))


def table(epochs: int) -> str:
    runs = [r for k, r in load_results()["runs"].items() if k.startswith(setting_key(epochs) + "|")]
    cols = ["linear_acc", "knn_acc", "mask_cover_min", "mask_cover_max", "mask_corr", "mask_shuffle_gap", "minutes"]
    lines = [f"CIFAR-10 JPEG, {setting_key(epochs)}: mean (min..max) over seeds; accuracies on the 10,000 test images",
             "", "| method | seeds | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for method in METHODS:
        rs = [r for r in runs if r["method"] == method]
        if not rs:
            continue
        cells = []
        for c in cols:
            vals = [r[c] for r in rs if r.get(c) is not None and (c != "minutes" or minutes_known(r))]
            cells.append("-" if not vals else f"{statistics.mean(vals):.3f} ({min(vals):.3f}..{max(vals):.3f})"
                         if len(vals) > 1 else f"{vals[0]:.3f}")
        lines.append(f"| {method} | {','.join(str(r['seed']) for r in sorted(rs, key=lambda r: r['seed']))} | "
                     + " | ".join(cells) + " |")
    lines += ["", "minutes: training wall time over all sittings, one thread on a shared 2-core machine (some runs under "
              "heavy load), not a cost comparison (see benchmarks/adios_speed.py); '-' where a resumed run's earlier "
              "sittings were not timed; mask_corr is 0 by definition with one mask (random_block)"]
    return "\n".join(lines)


def sweep_table() -> str:
    """SimCLR's final accuracies against training length (how long until the probe stops improving): the
    linear probe per seed, its spread over seeds, and the gain over the previous length paired by seed
    (seeds run at both lengths). The probe has stopped improving where that gain is within the spread."""
    rows = runs_by_length().get("simclr", {})
    lines = ["SimCLR alone, by length: linear probe per seed, spread over seeds (max - min), gain over the "
             "previous length (mean over the seeds run at both), kNN (mean over seeds)", "",
             "| epochs | steps | seeds | linear_acc | per seed | spread | gain | knn_acc |",
             "|---|---|---|---|---|---|---|---|"]
    previous = None
    for e in sorted(rows):
        rs = rows[e]
        acc = {seed: r["linear_acc"] for seed, r in sorted(rs.items())}
        gain = paired_mean_gap(acc, previous or {})
        gain = "-" if gain is None else f"{gain:+.3f}"
        spread = f"{max(acc.values()) - min(acc.values()):.3f}" if len(acc) > 1 else "-"
        lines.append(f"| {e} | {next(iter(rs.values()))['steps']} | {len(rs)} | {statistics.mean(acc.values()):.3f} | "
                     f"{', '.join(f'{a:.3f}' for a in acc.values())} | {spread} | {gain} | "
                     f"{statistics.mean(r['knn_acc'] for r in rs.values()):.3f} |")
        previous = acc
    return "\n".join(lines)


def draw_lengths() -> Optional[str]:
    """Linear probe against training length for every method in the cache (left), and each method's gap to
    SimCLR paired by seed (right) against SimCLR's own seed spread at that length (the grey band): the
    picture of whether a gap outgrows the noise as training gets longer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = {method: {e: {seed: r["linear_acc"] for seed, r in rs.items()} for e, rs in lengths.items()}
           for method, lengths in runs_by_length().items()}  # method -> epochs -> seed -> linear_acc
    if "simclr" not in acc:
        return None
    base = acc["simclr"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for method in METHODS:
        runs = acc.get(method, {})
        lengths = sorted(runs)
        if not lengths:
            continue
        style = dict(color="black", lw=2) if method == "simclr" else dict(lw=1.5)
        line, = left.plot(lengths, [statistics.mean(runs[e].values()) for e in lengths], marker="o",
                          label=method, **style)
        for e in lengths:
            left.scatter([e] * len(runs[e]), list(runs[e].values()), s=10, color=line.get_color(), alpha=0.5)
        if method == "simclr":
            continue
        gaps = {e: paired_mean_gap(runs[e], base.get(e, {})) for e in lengths}
        paired = [e for e in lengths if gaps[e] is not None]
        right.plot(paired, [gaps[e] for e in paired], marker="o", color=line.get_color(), label=method)
    spread = [(e, max(v.values()) - min(v.values())) for e, v in sorted(base.items()) if len(v) > 1]
    if spread:
        right.fill_between([e for e, _ in spread], [-d for _, d in spread], [d for _, d in spread], color="grey",
                           alpha=0.2, label="SimCLR seed spread (±)")
    right.axhline(0, color="black", lw=1)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(base), [str(e) for e in sorted(base)])
        ax.set_xlabel("training epochs (39 encoder steps each)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.set_ylabel("linear probe, 10,000 test images (dots: seeds)")
    right.set_ylabel("linear probe minus SimCLR's, same seed (mean)")
    left.set_title("accuracy against length (SimCLR: the baseline, black)", fontsize=10)
    right.set_title("gap to SimCLR against length", fontsize=10)
    fig.suptitle(f"ADIOS vs SimCLR on CIFAR-10 JPEG at CPU scale ({setting_name()})", fontsize=11)
    fig.tight_layout()
    fig.savefig(CURVE, dpi=120)
    plt.close(fig)
    return str(CURVE)


def draw_masks(epochs: int, root: str) -> Optional[str]:
    """The mask grid (zerosum.callbacks.mask_images) of the seed-0 ADIOS model on test images."""
    from zerosum.callbacks.mask_images import save_mask_grid
    from zerosum.modules import ADIOS

    rec = load_results()["runs"].get(f"{setting_key(epochs)}|adios|seed0")
    ckpt = Path(rec["run_dir"]) / "checkpoints" / "last.ckpt" if rec else None
    if ckpt is None or not ckpt.exists():
        return None
    model = ADIOS.load_from_checkpoint(str(ckpt), map_location="cpu").eval()
    dm = datamodule(root)
    dm.setup("fit")
    x = torch.stack([dm.test_set[i][0] for i in range(0, len(dm.test_set), len(dm.test_set) // 10)][:10])  # one per class
    title = (f"ADIOS (SimCLR, N={SETTING['num_masks']}) masks after {epochs} epochs, CIFAR-10 test images at "
             f"{SETTING['image_size']} px; linear probe {rec['linear_acc']:.3f}")
    with torch.no_grad():
        save_mask_grid(str(PICTURE), x, model.predict_masks(x), MEAN, STD, title=title)
    return str(PICTURE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, nargs="+", default=None,
                        help="run lengths (default: 160; with --report, every length in the cache)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--data", default=None, help="folder to extract CIFAR-10 JPEG into (default: a temp folder)")
    parser.add_argument("--out", default="benchmark_runs/adios_table", help="run folders (checkpoints, logs)")
    parser.add_argument("--report", action="store_true", help="only print the tables and draw the mask grid")
    parser.add_argument("--reevaluate", action="store_true", help="re-evaluate cached runs from their encoder.pt")
    parser.add_argument("--collapse", type=int, default=0, metavar="STEPS",
                        help="only run ADIOS with alpha 0 for up to STEPS steps and report when the masks collapse")
    parser.add_argument("--results", default=None, help="the JSON cache of finished runs (default: benchmarks/results)")
    args = parser.parse_args()
    if args.results:
        global RESULTS
        RESULTS = Path(args.results)
    if args.epochs is None:
        args.epochs = sorted({r["epochs"] for r in load_results()["runs"].values()}) if args.report else [160]
    root = cifar_root(args.data)
    if args.collapse:
        collapse_check(root, args.collapse)
        return
    if args.reevaluate:
        reevaluate(root)
    if not args.report and not args.reevaluate:
        for epochs in args.epochs:
            for seed in args.seeds:
                for method in args.methods:
                    key = f"{setting_key(epochs)}|{method}|seed{seed}"
                    if key in load_results()["runs"] or not claim(Path(args.out), key):
                        continue
                    print(f"[adios_table] running {key}", flush=True)
                    record = run_one(method, seed, epochs, root, Path(args.out))
                    record["git"] = git_head()
                    save_result(key, record)
                    print(f"[adios_table] {key}: {json.dumps(record)}", flush=True)
    print(sweep_table())
    parts = [sweep_table()]
    for epochs in args.epochs:
        print(table(epochs))
        parts.append(table(epochs))
    if args.report:
        runs = load_results()["runs"]
        drawn = [e for e in sorted(args.epochs, reverse=True) if f"{setting_key(e)}|adios|seed0" in runs]
        picture = draw_masks(drawn[0], root) if drawn else None
        if picture is None and PICTURE.exists():  # the run's checkpoint is gone (another machine): keep the earlier grid
            picture = str(PICTURE)
        parts.append(f"Mask grid: {Path(picture).name if picture else None}")  # beside this file
        print("mask grid:", picture)
        curve = draw_lengths()
        parts.append(f"Length curve: {Path(curve).name if curve else None}")
        print("length curve:", curve)
        TABLE_MD.write_text("\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
