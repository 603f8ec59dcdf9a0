"""Transferability from non-robust features (Ilyas et al. 2019, section 3.3, Figure 3).

For each architecture A the paper trains two models: one on D_det (plotted on the x-axis by its test
accuracy on the original test set: how well A learns from non-robust features) and one on the
original training set D (a *standard* classifier of A). The y-axis is the *transfer success rate*:
the fraction of D_det's adversarial examples (made on the source model toward the target class t)
that the standard A labels t, among the examples whose clean image that standard A classifies
correctly. The claim: architectures that learn D_det better are fooled toward t more often.

    python -m zerosum.construct.transfer --d-det outputs/robust/digits/d_det --data digits \\
        --archs small_cnn resnet18_cifar vgg16_bn preact_resnet18 --epochs 20 --lr 0.003

writes ``figure3.json`` (cached per architecture, so a run resumes) and ``figure3.png`` to ``--out``.
The baseline in the picture: the same standard model on a random perturbation of the same L2 norm.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import torch
from torch import nn

from zerosum.atomic import atomic_write
from zerosum.datamodules import ConstructedDataModule, DigitsDataModule, ImageFolderDataModule
from zerosum.datamodules.constructed import read_constructed
from zerosum.inference import eval_mode
from zerosum.modules import AdversarialTraining

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def source_data(name: str, batch_size: int, root: str = "data/cifar10", augment: bool = False):
    """The original datamodule (pixels in [0, 1]) of the CPU-scale presets (configs/robust/);
    ``augment`` (crop and flip) applies to cifar10_jpg only, as in its training configs."""
    if name == "digits":
        return DigitsDataModule(normalize=False, augment=False, batch_size=batch_size)
    if name == "cifar10_jpg":
        return ImageFolderDataModule(root=root, image_size=32, in_memory=True, normalize=False, mean=CIFAR_MEAN,
                                     std=CIFAR_STD, val_size=1000, max_train_samples=5000, max_test_samples=2000,
                                     batch_size=batch_size, augment=augment)
    raise ValueError(f"data: {name!r}; allowed: digits, cifar10_jpg")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def transfer_success(model: nn.Module, x_clean: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                     t: torch.Tensor) -> dict[str, float]:
    """Figure 3's rate for one standard ``model``: among the samples whose clean image it classifies
    as ``y``, the fraction whose adversarial image it labels as the target ``t``; plus the same rate
    for a random perturbation of the same L2 norm (baseline) and the number of samples counted."""
    correct = predict(model, x_clean) == y
    hits = predict(model, x_adv) == t
    delta = x_adv - x_clean
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(delta.shape, generator=generator)
    scale = delta.flatten(1).norm(dim=1) / direction.flatten(1).norm(dim=1).clamp_min(1e-12)
    x_rand = (x_clean + direction * scale.view(-1, *[1] * (delta.dim() - 1))).clamp(0, 1)
    random_hits = predict(model, x_rand) == t
    n = int(correct.sum())
    rate = lambda h: float(h[correct].float().mean()) if n else float("nan")
    return {"transfer_success": rate(hits), "random_direction": rate(random_hits), "num_examples": n}


def train_standard(data, net: str, net_args: dict[str, Any], epochs: int, lr: float, seed: int = 0,
                   accelerator: str = "cpu") -> tuple[nn.Module, float]:
    """A standard (eps 0) classifier of architecture ``net`` trained on ``data``; returns its network
    and its test accuracy on ``data``'s test split (the original test set for a constructed set)."""
    L.seed_everything(seed, verbose=False)
    model = AdversarialTraining(data.num_classes, data.in_channels, net=net, net_args=net_args, eps=0.0,
                                eval_eps=0.0, optimizer=lambda p: torch.optim.Adam(p, lr=lr),
                                data_mean=data.mean, data_std=data.std)
    trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator, devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, data)
    acc = trainer.test(model, datamodule=data, verbose=False)[0]["test/acc"]
    return model.net.cpu().eval(), 100 * acc


def figure3(d_det: str, data: str, archs: dict[str, dict[str, Any]], epochs: int, lr: float, out: str,
            seed: int = 0, batch_size: int = 128, root: str = "data/cifar10", min_hit_rate: float = 0.9) -> dict:
    """Runs Figure 3 for ``archs`` (name -> ``{"net": ..., "net_args": {...}}``); each architecture's
    result is cached in ``<out>/<name>_seed<seed>.json``."""
    fields, manifest = read_constructed(d_det)
    kind = manifest.get("settings", {}).get("kind")
    if kind != "d_det":
        raise ValueError(f"d_det: {d_det} holds a {kind!r} set; allowed: a D_det set (target: det)")
    probe = ConstructedDataModule(d_det, source_data(data, batch_size, root), min_hit_rate=min_hit_rate)
    probe.check_quality(manifest)  # a D_det that missed its targets is mostly relabelled clean data
    base = source_data(data, batch_size, root)
    base.setup("fit")
    x_clean = torch.stack([base.train_set_eval[int(i)][0] for i in fields["index"]])
    x_adv = fields["images"].float() / 255 if fields["images"].dtype == torch.uint8 else fields["images"].float()
    y, t = fields["orig_labels"].long(), fields["labels"].long()
    results = {"d_det": d_det, "data": data, "seed": seed, "epochs": epochs, "lr": lr,
               "target_hit_rate": manifest["stats"].get("target_hit_rate"), "attack": manifest["settings"]["attack"],
               "archs": {}}
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, spec in archs.items():
        cache = Path(out) / f"{name}_seed{seed}.json"
        if cache.exists():
            results["archs"][name] = json.loads(cache.read_text())
            continue
        augment = data != "digits"
        on_det = ConstructedDataModule(d_det, source_data(data, batch_size, root), batch_size=batch_size,
                                       augment=augment, min_hit_rate=min_hit_rate)
        _, det_acc = train_standard(on_det, spec["net"], spec.get("net_args", {}), epochs, lr, seed)
        standard, std_acc = train_standard(source_data(data, batch_size, root, augment=augment), spec["net"],
                                           spec.get("net_args", {}), epochs, lr, seed)
        rates = transfer_success(standard, x_clean, x_adv, y, t)
        row = {"net": spec["net"], "net_args": spec.get("net_args", {}), "test_acc_after_d_det": det_acc,
               "standard_test_acc": std_acc, "transfer_success": 100 * rates["transfer_success"],
               "random_direction": 100 * rates["random_direction"], "num_examples": rates["num_examples"]}
        atomic_write(cache, json.dumps(row, indent=1))
        results["archs"][name] = row
    results["source_architecture"] = source_architecture(manifest)
    rows = list(results["archs"].values())
    results["pearson"] = _pearson([r["test_acc_after_d_det"] for r in rows], [r["transfer_success"] for r in rows])
    atomic_write(Path(out) / "figure3.json", json.dumps(results, indent=2))
    plot(results, Path(out) / "figure3.png")
    return results


def _pearson(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    if len(a) < 3:
        return None
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    var = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return cov / var if var > 0 else None


def source_architecture(manifest: dict) -> Optional[dict[str, Any]]:
    """``{"net", "net_args"}`` of the model D_det was made on (from its checkpoint), if it is at hand."""
    path = manifest.get("settings", {}).get("source_checkpoint")
    if not path or not Path(path).is_file():
        return None
    hparams = torch.load(path, map_location="cpu", weights_only=False).get("hyper_parameters", {})
    return {"net": hparams.get("net"), "net_args": dict(hparams.get("net_args") or {})}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, r in results["archs"].items():
        ax.scatter(r["test_acc_after_d_det"], r["transfer_success"], s=40, zorder=3)
        source = results.get("source_architecture") == {"net": r["net"], "net_args": r["net_args"]}
        ax.annotate(name + (" (source)" if source else ""), (r["test_acc_after_d_det"], r["transfer_success"]),
                    fontsize=8, xytext=(4, 3), textcoords="offset points")
        ax.scatter(r["test_acc_after_d_det"], r["random_direction"], marker="x", color="grey", zorder=2)
    ax.scatter([], [], marker="x", color="grey", label="baseline: random direction, same L2 norm")
    ax.margins(x=0.15, y=0.08)  # room for the labels
    ax.set_xlabel("test accuracy on D after training on D_det (%)")
    ax.set_ylabel("transfer success to a standard model (%)")
    corr = results.get("pearson")
    hit = results.get("target_hit_rate")
    ax.set_title(f"Figure 3 ({results['data']}): D_det examples fool standard models toward t\n"
                 f"source hit rate {100 * hit:.1f}%" + (f", Pearson r = {corr:.2f}" if corr is not None else ""),
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-det", required=True, help="folder of the D_det shards (zerosum predict)")
    parser.add_argument("--data", default="digits", help="digits or cifar10_jpg (the original data)")
    parser.add_argument("--root", default="data/cifar10", help="ImageFolder root of cifar10_jpg")
    parser.add_argument("--archs", nargs="+", default=["small_cnn", "resnet18_cifar", "vgg16_bn", "preact_resnet18"])
    parser.add_argument("--width", type=int, default=None, help="net_args.width for every architecture")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/robust/figure3")
    args = parser.parse_args(argv)
    archs = {a: {"net": a, "net_args": {"width": args.width} if args.width else {}} for a in args.archs}
    results = figure3(args.d_det, args.data, archs, args.epochs, args.lr, args.out, args.seed, root=args.root)
    print(f"{'architecture':18} {'acc after D_det %':>17} {'transfer %':>10} {'random dir %':>12} {'std acc %':>9}")
    for name, r in results["archs"].items():
        print(f"{name:18} {r['test_acc_after_d_det']:17.1f} {r['transfer_success']:10.1f} "
              f"{r['random_direction']:12.1f} {r['standard_test_acc']:9.1f}")
    print(f"Pearson r (accuracy after D_det vs transfer): {results['pearson']}")


if __name__ == "__main__":
    main()
