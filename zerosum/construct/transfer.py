"""Transferability from non-robust features (Ilyas et al. 2019, section 3.3, Figure 3).

Train several architectures on D_det, report each one's accuracy on the original test set and the
*transfer success rate* of adversarial examples made on the source model: the fraction of test
images whose untargeted L2 PGD example (crafted on the source, fooling it) also fools the
architecture. The paper's claim: architectures that learn D_det better are fooled more often.

    python -m zerosum.construct.transfer --source outputs/robust/cifar10/standard.ckpt \\
        --d-det outputs/robust/cifar10/d_det --data cifar10 \\
        --archs resnet18_cifar resnet34_cifar vgg16_bn preact_resnet18 small_cnn --epochs 150 --lr 0.01

Writes ``transfer.json`` and ``transfer.png`` (accuracy vs. transfer success) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
import torch
from torch import nn

from zerosum.attacks import PGD
from zerosum.datamodules import CIFAR10DataModule, ConstructedDataModule, DigitsDataModule, ImageFolderDataModule
from zerosum.modules import AdversarialTraining


def source_data(name: str, batch_size: int):
    """The original datamodule (pixels in [0, 1]) for the presets of the configs."""
    if name == "digits":
        return DigitsDataModule(normalize=False, batch_size=batch_size)
    if name == "cifar10":
        return CIFAR10DataModule(root="data", normalize=False, batch_size=batch_size, val_size=5000, num_workers=4)
    if name == "cifar10_jpg":
        return ImageFolderDataModule(root="data/cifar10", image_size=32, in_memory=True, normalize=False,
                                     mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), val_size=1000,
                                     max_train_samples=5000, max_test_samples=2000, batch_size=batch_size)
    raise ValueError(f"--data must be one of digits, cifar10, cifar10_jpg; got {name!r}")


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def transfer_success(source: nn.Module, targets: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                     attack: PGD, batch: int = 250) -> dict[str, float]:
    """Fraction of source-fooling adversarial examples (of correctly classified images) that also
    fool each target model."""
    source.eval()
    keep = _predict(source, x) == y
    x, y = x[keep], y[keep]
    x_adv = torch.cat([attack(source, x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)])
    fooled = _predict(source, x_adv) != y
    x_adv, y = x_adv[fooled], y[fooled]
    out = {"num_examples": int(len(y))}
    for name, model in targets.items():
        model.eval()
        out[name] = float((_predict(model, x_adv) != y).float().mean()) if len(y) else float("nan")
    return out


def run(source_ckpt: str, d_det: str, data: str, archs: Sequence[str], epochs: int, lr: float, out: str,
        eps: float = 0.5, steps: int = 20, batch_size: int = 128, accelerator: str = "auto",
        max_test: Optional[int] = 2000) -> dict:
    source = AdversarialTraining.load_from_checkpoint(source_ckpt, map_location="cpu").net.eval()
    results = {"archs": {}, "settings": {"source": source_ckpt, "d_det": d_det, "eps": eps, "steps": steps}}
    models = {}
    for arch in archs:
        L.seed_everything(0, verbose=False)
        dm = ConstructedDataModule(d_det, source_data(data, batch_size), batch_size=batch_size,
                                   augment=data != "digits")
        model = AdversarialTraining(dm.num_classes, dm.in_channels, net=arch, eps=0.0, eval_eps=0.0,
                                    optimizer=lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=5e-4),
                                    data_mean=dm.mean, data_std=dm.std)
        trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator, devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0)
        trainer.fit(model, dm)
        acc = trainer.test(model, datamodule=dm, verbose=False)[0]["test/acc"]
        models[arch] = model.net.cpu().eval()
        results["archs"][arch] = {"test_acc": 100 * acc}
    dm = source_data(data, batch_size)
    dm.setup("test")
    xs, ys = zip(*[(b[0], b[1]) for b in dm.test_dataloader()])
    x, y = torch.cat(xs)[:max_test], torch.cat(ys)[:max_test]
    rates = transfer_success(source, models, x, y, PGD("l2", eps, steps, 2.5 * eps / steps, random_start=False))
    results["num_examples"] = rates.pop("num_examples")
    for arch, rate in rates.items():
        results["archs"][arch]["transfer_success"] = 100 * rate
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "transfer.json").write_text(json.dumps(results, indent=2))
    _plot(results, Path(out) / "transfer.png")
    return results


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for arch, r in results["archs"].items():
        ax.scatter(r["test_acc"], r["transfer_success"])
        ax.annotate(arch, (r["test_acc"], r["transfer_success"]), fontsize=8)
    ax.set_xlabel("test accuracy on D after training on D_det (%)")
    ax.set_ylabel("transfer success rate from the source (%)")
    ax.set_title("Figure 3: transfer vs. learning non-robust features", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="checkpoint of the standard source model (AdversarialTraining)")
    parser.add_argument("--d-det", required=True, help="folder of the D_det shards built from that source")
    parser.add_argument("--data", default="cifar10", help="digits, cifar10 or cifar10_jpg (the original test set)")
    parser.add_argument("--archs", nargs="+", default=["resnet18_cifar", "resnet34_cifar", "vgg16_bn", "small_cnn"])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--eps", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="outputs/robust/transfer")
    args = parser.parse_args(argv)
    results = run(args.source, args.d_det, args.data, args.archs, args.epochs, args.lr, args.out, args.eps, args.steps)
    print(f"{'architecture':18} {'test acc %':>10} {'transfer %':>10}   ({results['num_examples']} source-fooling examples)")
    for arch, r in results["archs"].items():
        print(f"{arch:18} {r['test_acc']:10.1f} {r['transfer_success']:10.1f}")


if __name__ == "__main__":
    main()
