"""ADIOS benchmark: the occlusion network's size and cost against the official one, the cost of an ADIOS
step against a plain SimCLR step measured in the same run, and the train-mode equivalence of the
batched step with the per-mask loop.

1. Size: parameters and FLOPs per image of the occlusion net at the STL-10 SimCLR settings of the
   official script (96 px, mask_fbase 128, N = 6, GroupNorm, 5 levels): the official network's
   numbers computed from its channel lists (src/utils/unet.py of YugeTen/adios), zerosum's default
   ``adios_unet`` and the earlier ``double_conv_unet`` measured (torch FlopCounterMode, 2 FLOPs per
   multiply-add), and the ResNet-18 encoder. Goal: ``adios_unet`` within 10% of the official.
2. Speed: one full ADIOS step (encoder step + occluder step) and one ADIOS-s step as a ratio to one
   plain SimCLR step of the same encoder, batch and data, timed interleaved in rotation (a shared
   machine's load hits all alike), median of ``--reps``; beside it the ratio of FLOPs per step
   counted by torch (what the time ratio would be if every FLOP cost the same). Default: the STL-10 SimCLR setting at a CPU
   batch (ResNet-18 at 96 px, N = 6, official occlusion net); ``--setting cifar`` for a CIFAR
   ResNet-18 at 32 px, N = 4.
3. Equivalence (``--equivalence``): the batched loss (per-mask BatchNorm statistics) against the
   per-mask reference loop in training mode: loss difference, occluder-gradient max difference and cosine.

    OMP_NUM_THREADS=1 python benchmarks/adios_speed.py [--setting stl10|cifar] [--batch 8] [--reps 3] [--equivalence]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from zerosum.modules import ADIOS
from zerosum.nets.occlusion_unet import default_num_blocks, official_widths

STL10_SIMCLR = dict(image_size=96, base_width=128, num_masks=6, norm="group")  # bash_files/training/stl10/resnet18/simclr_adios.sh


def official_unet_cost(image_size: int, base_width: int, num_masks: int, in_channels: int = 3) -> tuple[int, int]:
    """Parameters and FLOPs per image of the official occlusion net (GroupNorm, convs without bias),
    from its channel lists: one 3x3 conv per level, MLP bottleneck 128-128, 1x1 head."""
    n = default_num_blocks(image_size)
    enc, dec = official_widths(base_width, n)
    sizes = [image_size // 2 ** i for i in range(n)]
    params = flops = 0
    for i, (c_in, c_out) in enumerate(zip([in_channels, *enc[:-1]], enc)):
        params += 9 * c_in * c_out + 2 * c_out
        flops += 2 * 9 * c_in * c_out * sizes[i] ** 2
    dec_in = [2 * enc[-1]] + [dec[i - 1] + enc[-1 - i] for i in range(1, n)]
    for i, (c_in, c_out) in enumerate(zip(dec_in, dec)):
        params += 9 * c_in * c_out + 2 * c_out
        flops += 2 * 9 * c_in * c_out * sizes[n - 1 - i] ** 2
    flat = enc[-1] * sizes[-1] ** 2
    params += (flat * 128 + 128) + (128 * 128 + 128) + (128 * flat + flat) + (dec[-1] * num_masks + num_masks)
    flops += 2 * (flat * 128 + 128 * 128 + 128 * flat) + 2 * dec[-1] * num_masks * image_size ** 2
    return params, flops


def measured_cost(net: torch.nn.Module, image_size: int) -> tuple[int, int]:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, image_size, image_size))
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops()


def size_report() -> dict:
    s = STL10_SIMCLR
    official = official_unet_cost(s["image_size"], s["base_width"], s["num_masks"])
    rows = {"official (YugeTen/adios src/utils/unet.py)": official}
    for mask_net in ("adios_unet", "double_conv_unet"):
        model = ADIOS(num_classes=10, image_size=s["image_size"], net="torchvision.resnet18", num_masks=s["num_masks"],
                      mask_net=mask_net, mask_net_args={"base_width": s["base_width"], "norm": s["norm"]}, encoder_export=None)
        rows[f"zerosum {mask_net}"] = measured_cost(model.mask_net, s["image_size"])
    rows["encoder: ResNet-18 (torchvision)"] = measured_cost(model.encoder.backbone, s["image_size"])
    print(f"[size] occlusion net at the STL-10 SimCLR settings ({s['image_size']} px, mask_fbase {s['base_width']}, "
          f"N={s['num_masks']}, GroupNorm); FLOPs per image (2 per multiply-add)")
    print(f"  {'network':44s} {'params (M)':>10s} {'GFLOP':>8s} {'params / official':>18s} {'FLOP / official':>16s}")
    for name, (p, f) in rows.items():
        print(f"  {name:44s} {p / 1e6:10.2f} {f / 1e9:8.2f} {p / official[0]:18.3f} {f / official[1]:16.3f}")
    ours = rows["zerosum adios_unet"]
    ok = abs(ours[0] / official[0] - 1) <= 0.1 and abs(ours[1] / official[1] - 1) <= 0.1
    print(f"  adios_unet within 10% of the official in parameters and FLOPs: {ok}")
    return {k: {"params": p, "flops": f} for k, (p, f) in rows.items()}


def build(setting: str, masking: str) -> ADIOS:
    """The official STL-10 SimCLR+ADIOS model (or a CIFAR ResNet-18 one) with the official optimisers
    (SGD + LARS, clipping), constant learning rates."""
    from zerosum.optim import spec

    torch.manual_seed(0)
    lars = dict(momentum=0.9, eta=0.02, clip_lr=True, exclude_bias_and_norm=True)
    if setting == "stl10":  # bash_files/training/stl10/resnet18/simclr_adios.sh (alpha: see configs/adios/stl10_simclr.yaml)
        s = STL10_SIMCLR
        wd = 8.504658547335148e-05
        return ADIOS(num_classes=10, image_size=96, net="torchvision.resnet18", objective="simclr",
                     objective_args={"proj_hidden_dim": 2048, "proj_output_dim": 256, "temperature": 0.2},
                     masking=masking, num_masks=s["num_masks"], alpha=1.0,
                     mask_net_args={"base_width": s["base_width"], "norm": s["norm"]},
                     optimizer=spec("zerosum.optim.LARS", lr=0.13234838295784523, weight_decay=wd, **lars),
                     mask_optimizer=spec("zerosum.optim.LARS", lr=0.01946841419435407, weight_decay=wd, **lars),
                     cosine=False, encoder_export=None)
    return ADIOS(num_classes=10, image_size=32, net="resnet18_cifar", objective="simclr",
                 objective_args={"proj_hidden_dim": 2048, "proj_output_dim": 128, "temperature": 0.2}, masking=masking,
                 num_masks=4, alpha=0.923, alpha_entropy=0.712, mask_net_args={"base_width": 32, "norm": "instance"},
                 optimizer=spec("zerosum.optim.LARS", lr=0.111, weight_decay=1e-4, **lars),
                 mask_optimizer=spec("zerosum.optim.LARS", lr=0.0145, weight_decay=1e-4, **lars),
                 cosine=False, encoder_export=None)


def step_flops(model: ADIOS, v1: torch.Tensor, v2: torch.Tensor) -> int:
    """FLOPs of one training step (forward and backward of both players), counted by torch."""
    with FlopCounterMode(display=False) as counter:
        model.training_step(([v1, v2], None, None), 0)
    return counter.get_total_flops()


def speed(setting: str, batch: int, reps: int) -> dict:
    size = 96 if setting == "stl10" else 32
    g = torch.Generator().manual_seed(0)
    v1, v2 = torch.randn(batch, 3, size, size, generator=g), torch.randn(batch, 3, size, size, generator=g)
    models = {name: build(setting, masking) for name, masking in (("simclr", "none"), ("adios", "adios"), ("adios_s", "adios_s"))}
    flops = {name: step_flops(model, v1, v2) for name, model in models.items()}
    steps = {name: (lambda m=model: m.training_step(([v1, v2], None, None), 0)) for name, model in models.items()}
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.helpers.adios import per_mask_ssl_loss

    adios = models["adios"]
    masks = adios.predict_masks(v2).detach()

    def encoder_loss(loss_fn):  # the encoder player's forward + backward, masks fixed
        adios.zero_grad(set_to_none=True)
        loss_fn(adios, v1, v2, None, masks)[0].backward()

    steps["batched"] = lambda: encoder_loss(lambda m, *a: m.ssl_loss(*a))
    steps["loop"] = lambda: encoder_loss(per_mask_ssl_loss)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for rep in range(reps + 1):  # round 0 warms up
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if rep > 0:
                times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = models["adios"].hparams.num_masks
    print(f"[speed] one training step, {setting} setting ({size} px, batch {batch}, N={n}), {torch.get_num_threads()} "
          f"thread(s), median of {reps}, interleaved; the machine may be shared")
    for k in ("simclr", "adios", "adios_s"):
        print(f"  {k:8s} {med[k]:8.3f} s   ratio to SimCLR {med[k] / med['simclr']:6.2f}   "
              f"({flops[k] / 1e9:7.1f} GFLOP per step: ratio {flops[k] / flops['simclr']:6.2f})")
    print(f"  encoder loss forward + backward (N={n} masks fixed): batched with per-mask BatchNorm groups "
          f"{med['batched']:.3f} s, per-mask loop (the official code's) {med['loop']:.3f} s: "
          f"batched / loop {med['batched'] / med['loop']:.2f}")
    return {"setting": setting, "batch": batch, "seconds": med, "gflop": {k: v / 1e9 for k, v in flops.items()},
            "ratio_adios": med["adios"] / med["simclr"], "ratio_adios_s": med["adios_s"] / med["simclr"]}


def equivalence(batch: int) -> dict:
    """Train-mode batched loss vs the per-mask loop (tests/helpers/adios.py), CIFAR ResNet-18, N = 4."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import copy

    from tests.helpers.adios import per_mask_ssl_loss

    from zerosum.modules.adios import chunk_outputs, occlude

    def pooled_ssl_loss(m, v1, v2, masks1, masks2):  # all views in one BatchNorm batch (the earlier batched step)
        n = masks2.shape[1]
        parts = chunk_outputs(m.objective.encode(m.encoder, torch.cat([v1, occlude(v2, masks2)])), n + 1)
        return sum(m.objective.masked_loss((parts[0], None), (None, parts[k])) for k in range(1, n + 1)), parts[0]

    model = build("cifar", "adios").train()
    loop_model, pooled_model = copy.deepcopy(model), copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    v1, v2 = torch.randn(batch, 3, 32, 32, generator=g), torch.randn(batch, 3, 32, 32, generator=g)
    out = []
    for m, fn in ((model, lambda mm, *a: mm.ssl_loss(*a)), (loop_model, per_mask_ssl_loss), (pooled_model, pooled_ssl_loss)):
        loss, _ = fn(m, v1, v2, None, m.predict_masks(v2))
        grads = torch.autograd.grad(loss, list(m.mask_net.parameters()))
        out.append((loss.detach(), torch.cat([x.flatten() for x in grads])))
    (lb, gb), (ll, gl), (lp, gp) = out
    cos = torch.nn.functional.cosine_similarity(gb.double(), gl.double(), dim=0).item()
    cos_pooled = torch.nn.functional.cosine_similarity(gp.double(), gl.double(), dim=0).item()
    res = {"loss_batched": lb.item(), "loss_loop": ll.item(), "loss_abs_diff": (lb - ll).abs().item(),
           "grad_max_abs_diff": (gb - gl).abs().max().item(), "grad_max_abs": gl.abs().max().item(), "grad_cosine": cos,
           "loss_pooled": lp.item(), "grad_cosine_pooled": cos_pooled}
    print(f"[equivalence] train mode, CIFAR ResNet-18 + official occlusion net at initialisation, batch {batch}, N=4: "
          f"loss {lb.item():.6f} vs loop {ll.item():.6f} (|diff| {res['loss_abs_diff']:.2e}); occluder gradient max "
          f"|diff| {res['grad_max_abs_diff']:.2e} (max |grad| {res['grad_max_abs']:.2e}), cosine {cos:.7f}")
    print(f"  control, one pooled BatchNorm batch for all views: loss {lp.item():.6f} (|diff| {(lp - ll).abs().item():.2e}), "
          f"occluder gradient cosine to the loop {cos_pooled:.4f}")
    return res


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=("stl10", "cifar"), default="stl10")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--equivalence", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    size_report()
    if args.equivalence:
        equivalence(max(args.batch, 16))
    if not args.skip_speed:
        speed(args.setting, args.batch, args.reps)
