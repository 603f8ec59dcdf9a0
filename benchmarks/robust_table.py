"""Ilyas et al.'s section 3 at CPU scale, driven by the shipped configs: Table 1, Figure 2b and Figure 3.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/robust_table.py --data digits
    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/robust_table.py --data cifar10_jpg --root /tmp/cifar10
    python benchmarks/robust_table.py --data digits --figure3 --archs small_cnn resnet18_cifar preact_resnet18 vgg16_bn

Every number of the pipeline comes from ``configs/robust/<data>_*.yaml`` (networks, radii, steps,
epochs, learning rates), so what is measured here is what the configs do:

1. the standard and the L2-robust source models (``<data>_standard.yaml``, ``<data>_adv_l2.yaml``);
2. D_R, D_NR, D_rand, D_det built by the library's construction modules with the construction
   configs' settings (``<data>_construct_<kind>.yaml``), written (and resumed / healed) under
   ``outputs/robust/<data>/``; the manifest's target hit rate and inversion loss are reported;
3. a standard model trained on each set (``<data>_train_<kind>.yaml``) and tested on the original
   test split: clean accuracy and L2 PGD-20 accuracy at the configs' ``eval_eps``;
4. with ``--figure3``, Figure 3 (:mod:`zerosum.construct.transfer`) on the D_det of step 2.

Results are cached per (data, row, seed) under ``benchmarks/results/robust/<data>/`` and the source
checkpoints under ``outputs/robust/<data>/``, so the table resumes and grows across sessions.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from zerosum.atomic import atomic_write
from zerosum.construct import ConstructionData, ShardWriter
from zerosum.construct.transfer import figure3
from zerosum.datamodules import ConstructedDataModule
from zerosum.modules import AdversarialTraining

CONFIGS = Path(__file__).parents[1] / "configs" / "robust"
KINDS = ("d_r", "d_nr", "d_rand", "d_det")
SOURCE_OF = {"d_r": "adv_l2", "d_nr": "standard", "d_rand": "standard", "d_det": "standard"}


def config(data: str, name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{data}_{name}.yaml").read_text())


def instantiate(spec: dict, **override):
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    args = {**spec.get("init_args", {}), **override}
    args = {k: instantiate(v) if isinstance(v, dict) and "class_path" in v else v for k, v in args.items()}
    return cls(**args)


def datamodule(spec: dict, root: str):
    """The config's datamodule, with an ImageFolder ``root`` replaced by ``--root``."""
    init = dict(spec.get("init_args", {}))
    if "root" in init:
        init["root"] = root
    if isinstance(init.get("data"), dict):
        init["data"] = datamodule(init["data"], root)
    return instantiate({"class_path": spec["class_path"], "init_args": init})


def quiet_trainer(**kw) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kw)


def train_from_config(cfg: dict, data, seed: int):
    """AdversarialTraining as the config says, trained and tested on ``data``."""
    L.seed_everything(seed, verbose=False)
    init = dict(cfg["model"]["init_args"])
    opt = init.pop("optimizer")
    opt_cls = getattr(importlib.import_module(opt["class_path"].rpartition(".")[0]), opt["class_path"].rpartition(".")[2])
    model = AdversarialTraining(data.num_classes, data.in_channels, data_mean=data.mean, data_std=data.std,
                                optimizer=lambda p: opt_cls(p, **opt.get("init_args", {})), **init)
    trainer = quiet_trainer(max_epochs=cfg["trainer"]["max_epochs"], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, data)
    result = trainer.test(model, datamodule=data, verbose=False)[0]
    return model, trainer, {"clean": 100 * result["test/acc"], "robust": 100 * result.get("test/robust_acc", float("nan")),
                            "eval_eps": model.eval_attack.eps}


def source(data_name: str, name: str, root: str, out: Path, seed: int) -> tuple[str, dict]:
    """The source model's checkpoint (trained once, cached) and its test row."""
    ckpt, row_path = out / f"{name}_s{seed}.ckpt", out / f"{name}_s{seed}.json"
    if ckpt.exists() and row_path.exists():
        return str(ckpt), json.loads(row_path.read_text())
    cfg = config(data_name, name)
    _, trainer, row = train_from_config(cfg, datamodule(cfg["data"], root), seed)
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(ckpt)
    atomic_write(row_path, json.dumps(row))
    return str(ckpt), row


def construct(data_name: str, kind: str, ckpt: str, root: str, folder: Path) -> dict:
    """Builds (or resumes / heals) the set in ``folder`` with the construction config's settings."""
    cfg = config(data_name, f"construct_{kind}")
    spec = cfg["model"]
    module = instantiate({"class_path": spec["class_path"],
                          "init_args": {**spec["init_args"], "checkpoint": ckpt,
                                        **({"num_classes": 10} if "NonRobust" in spec["class_path"] else {})}})
    data = datamodule(cfg["data"], root)
    quiet_trainer(callbacks=[ShardWriter(str(folder))]).predict(module, datamodule=data, return_predictions=False)
    return json.loads((folder / "manifest.json").read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("digits", "cifar10_jpg"), default="digits")
    parser.add_argument("--root", default="data/cifar10", help="ImageFolder root of cifar10_jpg")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure3", action="store_true", help="run Figure 3 on the D_det")
    parser.add_argument("--archs", nargs="+", default=["small_cnn", "small_cnn:64", "resnet18_cifar", "resnet34_cifar",
                                                       "preact_resnet18"], help="net or net:width (Figure 3)")
    parser.add_argument("--width", type=int, default=16, help="net_args.width of every Figure-3 architecture")
    parser.add_argument("--fig3-epochs", type=int, default=20)
    parser.add_argument("--fig3-lr", type=float, default=0.003)
    parser.add_argument("--results", default="benchmarks/results/robust")
    parser.add_argument("--outputs", default="outputs/robust")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t0 = time.time()
    outputs, results = Path(args.outputs) / args.data, Path(args.results) / args.data
    results.mkdir(parents=True, exist_ok=True)
    table_path = results / f"table_s{args.seed}.json"  # a run of some --kinds updates their rows only
    table: dict[str, Any] = (json.loads(table_path.read_text()) if table_path.exists() else
                             {"data": args.data, "seed": args.seed, "rows": {}, "construction": {}})
    ckpts = {}
    for name, label in (("standard", "D (standard training)"), ("adv_l2", "D (adversarial training, L2)")):
        if name == "adv_l2" and "d_r" not in args.kinds:
            continue  # only D_R needs the robust source (8x the cost of the standard one)
        ckpts[name], table["rows"][label] = source(args.data, name, args.root, outputs, args.seed)
        print(f"[{time.time() - t0:5.0f}s] {label}: {table['rows'][label]}", flush=True)
    for kind in args.kinds:
        folder = outputs / f"{kind}_s{args.seed}"
        manifest = construct(args.data, kind, ckpts[SOURCE_OF[kind]], args.root, folder)
        table["construction"][kind] = {"settings": manifest["settings"], **manifest["stats"]}
        print(f"[{time.time() - t0:5.0f}s] built {kind}: {manifest['stats']}", flush=True)
        row_path = results / f"train_{kind}_s{args.seed}.json"
        if row_path.exists():
            row = json.loads(row_path.read_text())
        else:
            cfg = config(args.data, f"train_{kind}")
            init = dict(cfg["data"]["init_args"], path=str(folder))
            data = datamodule({"class_path": cfg["data"]["class_path"], "init_args": init}, args.root)
            try:
                _, _, row = train_from_config(cfg, data, args.seed)
            except ValueError as err:  # a set below the configured target hit rate is refused
                row = {"refused": str(err).splitlines()[0]}
            atomic_write(row_path, json.dumps(row))
        table["rows"][kind] = row
        print(f"[{time.time() - t0:5.0f}s] trained on {kind}: {row}", flush=True)
    atomic_write(table_path, json.dumps(table, indent=2))
    print(f"\nCPU-scale section 3 ({args.data}; test split of the original data; robust = L2 PGD-20)")
    print(f"{'training set':32} {'clean %':>8} {'robust %':>9} {'at eps':>7}   construction")
    for name, r in table["rows"].items():
        built = table["construction"].get(name, {})
        stats = ", ".join(f"{k} {v:.3f}" for k, v in built.items() if k != "settings")
        if "refused" in r:
            print(f"{name:32} refused: {r['refused'][:90]}")
        else:
            print(f"{name:32} {r['clean']:8.1f} {r['robust']:9.1f} {r['eval_eps']:7.2f}   {stats}")
    if args.figure3:
        archs = {}
        for a in args.archs:  # "net" or "net:width"
            net, _, width = a.partition(":")
            archs[a] = {"net": net, "net_args": {"width": int(width) if width else args.width}}
        fig = figure3(str(outputs / f"d_det_s{args.seed}"), args.data, archs, args.fig3_epochs, args.fig3_lr,
                      str(results / "figure3"), seed=args.seed, root=args.root)
        print(f"\nFigure 3 ({args.data}): {'architecture':16} {'acc after D_det %':>17} {'transfer %':>10} "
              f"{'random dir %':>12}")
        for name, r in fig["archs"].items():
            print(f"{'':22}{name:16} {r['test_acc_after_d_det']:17.1f} {r['transfer_success']:10.1f} "
                  f"{r['random_direction']:12.1f}")
        print(f"Pearson r: {fig['pearson']}")
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
