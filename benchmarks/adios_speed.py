"""ADIOS benchmark: speed of one training step, and a CPU-scale masking comparison.

1. Speed: one full ADIOS step (encoder step + occlusion step; SimCLR, N=4, CIFAR ResNet-18 at 32 px,
   batch 64) with our batched encoding (clean view once, the N masked views as one batch) vs. the
   reference loop that re-encodes the clean view for every mask; goal ratio <= 0.7. Also ADIOS-s vs
   ADIOS.
2. Accuracy: online linear-probe and kNN accuracy of SimCLR vs SimCLR+ADIOS vs SimCLR+random
   patch masks on the CIFAR-10 JPEG folder (configs/adios/cifar10_jpg_simclr.yaml: small CNN,
   5k-image subset, a few epochs).

    OMP_NUM_THREADS=1 python benchmarks/adios_speed.py [--reps 2] [--epochs 3] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from zerosum.modules import ADIOS


def one_step(model: ADIOS, opt_e, opt_m, v1, v2, batched: bool) -> None:
    """The same two steps as ADIOS.training_step, without Lightning."""
    masks2 = model.predict_masks(v2)
    used = masks2
    if model.hparams.masking == "adios_s":
        used = model.pick_one(masks2, torch.randint(model.hparams.num_masks, (len(v2),)))
    model.mask_net.requires_grad_(False)
    opt_e.zero_grad()
    loss, _ = model.ssl_loss(v1, v2, None, used.detach(), batched=batched)
    loss.backward()
    opt_e.step()
    model.mask_net.requires_grad_(True)
    for m in (model.encoder, model.objective):
        m.requires_grad_(False)
    opt_m.zero_grad()
    loss, _ = model.ssl_loss(v1, v2, None, used, batched=batched)
    (-(loss - model.penalty(masks2))).backward()
    opt_m.step()
    for m in (model.encoder, model.objective):
        m.requires_grad_(True)


def setup(masking: str, batch: int = 64, n: int = 4):
    torch.manual_seed(0)
    model = ADIOS(num_classes=10, net="resnet18_cifar", objective="simclr", masking=masking, num_masks=n,
                  mask_net_args={"base_width": 32, "norm": "instance"}, cosine=False)
    opt_e = torch.optim.SGD([p for m in (model.encoder, model.objective) for p in m.parameters()], lr=0.1, momentum=0.9)
    opt_m = torch.optim.SGD(model.mask_net.parameters(), lr=0.01, momentum=0.9)
    return model, opt_e, opt_m


def speed(reps: int) -> dict:
    """Variants are timed in rotation (loop, ours, ADIOS-s) so that load changes on a shared
    machine hit all of them alike; the best of ``reps`` is kept."""
    v1, v2 = torch.randn(64, 3, 32, 32), torch.randn(64, 3, 32, 32)
    variants = {"loop": (setup("adios"), False), "ours": (setup("adios"), True), "adios_s": (setup("adios_s"), True)}
    best = {k: float("inf") for k in variants}
    for rep in range(reps + 1):  # the first round is the warm-up
        for name, ((model, opt_e, opt_m), batched) in variants.items():
            start = time.perf_counter()
            one_step(model, opt_e, opt_m, v1, v2, batched)
            if rep > 0:
                best[name] = min(best[name], time.perf_counter() - start)
    ours, loop, small = best["ours"], best["loop"], best["adios_s"]
    print(f"[speed] one ADIOS step (SimCLR, N=4, ResNet-18 CIFAR, 32 px, batch 64, {torch.get_num_threads()} threads, best of {reps})")
    print(f"  reference loop (re-encode per mask): {loop:7.2f} s")
    print(f"  ours (clean once, N masks batched):  {ours:7.2f} s   ratio {ours / loop:.2f} (goal <= 0.7)")
    print(f"  ADIOS-s (one mask per sample):       {small:7.2f} s   ratio vs ADIOS {small / ours:.2f}")
    return {"adios_batched_s": ours, "adios_loop_s": loop, "adios_s_s": small,
            "ratio_ours_vs_loop": ours / loop, "ratio_adios_s_vs_adios": small / ours}


def last_scalars(folder: str, prefix: str = "knn/") -> dict:
    """Last logged value of every TensorBoard scalar under ``folder`` starting with ``prefix``
    (``fit``'s validation metrics are gone from ``callback_metrics`` once ``test`` has run)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for dirpath, _, files in os.walk(folder):
        if any(f.startswith("events.out.tfevents") for f in files):
            acc = EventAccumulator(dirpath)
            acc.Reload()
            for tag in acc.Tags().get("scalars", []):
                if tag.startswith(prefix):
                    out[tag] = acc.Scalars(tag)[-1].value
    return out


def accuracy(epochs: int, root: str) -> dict:
    from zerosum.cli import run

    results = {}
    for masking in ("none", "adios", "random_patch"):
        torch.manual_seed(0)
        start = time.perf_counter()
        cli = run(["fit", "--config", "configs/adios/cifar10_jpg_simclr.yaml", f"--model.init_args.masking={masking}",
                   f"--trainer.max_epochs={epochs}", f"--trainer.default_root_dir={root}/{masking}",
                   "--trainer.enable_progress_bar=false"])
        metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith(("probe/", "knn/"))}
        metrics.update(last_scalars(f"{root}/{masking}"))
        metrics["minutes"] = (time.perf_counter() - start) / 60
        pngs = []
        for dirpath, _, files in os.walk(f"{root}/{masking}"):
            pngs += [os.path.join(dirpath, f) for f in files if f.endswith(".png")]
        metrics["mask_grid"] = sorted(pngs)[-1] if pngs else None
        results[masking] = metrics
        print(f"[accuracy] {masking}: {json.dumps(metrics)}", flush=True)
    print("[accuracy] masking        probe/test_acc  knn/val_acc  minutes")
    for k, m in results.items():
        print(f"  {k:14s} {m.get('probe/test_acc', float('nan')):14.3f} {m.get('knn/val_acc', float('nan')):12.3f} {m['minutes']:8.1f}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--root", default="benchmark_runs/adios")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    if not args.skip_speed:
        speed(args.reps)
    if not args.skip_accuracy:
        accuracy(args.epochs, args.root)
