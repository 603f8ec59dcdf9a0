"""PGD-10 (L-inf and L2): zerosum.attacks.pgd vs. torchattacks on the same model and batch.

    pip install -e .[bench]          # torchattacks, optional
    python benchmarks/pgd_speed.py [--batch 256] [--repeats 5] [--device cpu]

Prints images/second of both and the ratio ours/torchattacks (goal >= 1.0), and the robust accuracy
of both (goal: within 0.5 points). Without random start both run the same deterministic algorithm,
so accuracies must agree almost exactly; with random start they agree up to sampling noise.
The model is a small CNN briefly trained on the CIFAR-10 JPEG folder (data/cifar10) when present,
else on digits resized to 32x32x3; timings alternate between the two libraries and report medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from zerosum.attacks import pgd
from zerosum.nets import Normalized, SmallCNN


def trained_model(device: str):
    from zerosum.datamodules import DigitsDataModule, ImageFolderDataModule

    if Path("data/cifar10/train").is_dir():
        dm = ImageFolderDataModule(root="data/cifar10", image_size=32, in_memory=True, normalize=False, augment=False,
                                   max_train_samples=5000, batch_size=128, val_size=500,
                                   mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
        name, epochs = "cifar10_jpg (5k images)", 2
    else:
        dm = DigitsDataModule(image_size=32, channels=3, normalize=False, batch_size=128)
        name, epochs = "digits 32x32x3", 10  # ~10 steps an epoch: BatchNorm statistics need more than 2
    dm.setup("fit")
    torch.manual_seed(0)
    model = Normalized(SmallCNN(dm.num_classes, 3, width=32), dm.mean, dm.std).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        for x, y, _ in dm.train_dataloader():
            opt.zero_grad()
            F.cross_entropy(model(x.to(device)), y.to(device)).backward()
            opt.step()
    model.eval()
    return model, dm, f"{name}, {epochs} epochs"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    try:
        import torchattacks
    except ImportError:
        print("pgd_speed: torchattacks is NOT installed, so there is no baseline to compare against.\n"
              "Install the optional benchmark dependency:  pip install -e .[bench]   (or pip install torchattacks)")
        return 2

    model, dm, data_name = trained_model(args.device)
    xs, ys = [], []
    for x, y, _ in dm.loader(dm.test_set, batch_size=args.batch):
        xs.append(x)
        ys.append(y)
        break
    x, y = xs[0].to(args.device), ys[0].to(args.device)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    print(f"model: SmallCNN(width 32) trained on {data_name}; batch {len(x)}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, clean accuracy {100 * clean:.1f}%")
    settings = {"linf": dict(eps=2 / 255, alpha=0.5 / 255), "l2": dict(eps=0.25, alpha=0.05)}
    rows = []
    for norm, s in settings.items():
        for random_start in (False, True):
            ta_cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
            ta = ta_cls(model, eps=s["eps"], alpha=s["alpha"], steps=10, random_start=random_start)
            start = ("uniform" if norm == "linf" else "sphere") if random_start else None

            def ours():
                return pgd(model, x, y, eps=s["eps"], step_size=s["alpha"], steps=10, norm=norm, random_start=start)

            def theirs():
                return ta(x, y)

            times = {"ours": [], "torchattacks": []}
            accs = {"ours": [], "torchattacks": []}
            ours(), theirs()  # warm-up
            for _ in range(args.repeats):
                for name, fn in (("ours", ours), ("torchattacks", theirs)):
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    x_adv = fn()
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    times[name].append(time.perf_counter() - t0)
                    with torch.no_grad():
                        accs[name].append((model(x_adv).argmax(1) == y).float().mean().item())
            ips = {k: len(x) / statistics.median(v) for k, v in times.items()}
            acc = {k: 100 * statistics.mean(v) for k, v in accs.items()}
            rows.append((norm, random_start, ips["ours"], ips["torchattacks"], ips["ours"] / ips["torchattacks"],
                         acc["ours"], acc["torchattacks"]))
    print(f"{'norm':5} {'rand':5} {'ours img/s':>11} {'ta img/s':>9} {'ratio':>6} {'ours rob%':>10} "
          f"{'ta rob%':>8} {'|diff|':>7}")
    for norm, rs, ours_ips, ta_ips, ratio, a1, a2 in rows:
        print(f"{norm:5} {str(rs):5} {ours_ips:11.1f} {ta_ips:9.1f} {ratio:6.2f} {a1:10.2f} {a2:8.2f} {abs(a1 - a2):7.2f}")
    ratios = [r[4] for r in rows]
    diffs = [abs(r[5] - r[6]) for r in rows]
    print(f"speed ratio ours/torchattacks: min {min(ratios):.3f} (goal >= 1.0: {'met' if min(ratios) >= 1 else 'NOT met'}); "
          f"max robust-accuracy difference {max(diffs):.2f} points (goal <= 0.5: {'met' if max(diffs) <= 0.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
