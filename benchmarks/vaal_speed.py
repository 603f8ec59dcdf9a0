"""VAAL speed, each figure against a baseline measured in the same run.

(a) Training-iteration overhead: ``iters`` iterations of :class:`zerosum.modules.VAAL` under the
    Lightning Trainer (manual optimisation, three optimizers, logging) vs. a plain PyTorch loop doing
    the same three updates (T step, ``num_vae_steps`` VAE steps, ``num_adv_steps`` D steps) with the
    same objectives, networks, batches and optimizers. Prints ms/iteration and the ratio
    trainer / plain (goal <= 1.10).
(b) Query time: :class:`zerosum.query.VAALQuery` (one VAE-encoder + D pass per sample) vs. MC-dropout
    BALD (:class:`zerosum.query.BALDStrategy`, ``mc_samples`` dropout passes of the task model) on the
    same unlabeled pool, both through the engine's ``score_pool``. Prints seconds and BALD / VAAL
    (the paper reports MC-dropout 81.05 s vs. VAAL 10.59 s, about 7.7x, with VGG16 on CIFAR-10).

    python benchmarks/vaal_speed.py                                   # CPU scale (small nets)
    python benchmarks/vaal_speed.py --net vgg16_bn --vae-width 128 --pool 45000 --device cuda   # paper scale
"""

from __future__ import annotations

import argparse
import os
import time

import lightning as L
import torch

from zerosum.datamodules import ActivePoolDataModule, SyntheticDataModule
from zerosum.modules import VAAL, Classifier
from zerosum.query import BALDStrategy, VAALQuery


def make_vaal(args) -> VAAL:
    adam = lambda p: torch.optim.Adam(p, lr=5e-4)  # noqa: E731
    return VAAL(num_classes=10, in_channels=3, image_size=args.image_size, net=args.net, net_args=net_args(args),
                latent_dim=32, vae_base_width=args.vae_width, vae_num_blocks=4, task_optimizer=adam,
                vae_optimizer=adam, disc_optimizer=adam)


def net_args(args) -> dict:
    return {"width": args.width} if args.net == "small_cnn" else {}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def batches(args, n: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 3, args.image_size, args.image_size)
    return [{"labeled": (torch.randn(*shape, generator=g), torch.randint(0, 10, (args.batch_size,), generator=g)),
             "unlabeled": (torch.randn(*shape, generator=g),)} for _ in range(n)]


class BatchTimer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1 = warmup, None, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync(pl_module.device)
        if batch_idx + 1 == self.warmup:
            self.t0 = time.perf_counter()
        self.t1 = time.perf_counter()


class ListLoader:
    """Iterates a fixed list of (already collated) batches: the same input for both loops."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


def time_trainer(args, data, device) -> float:
    torch.manual_seed(0)
    model = make_vaal(args)
    timer = BatchTimer(args.warmup)
    trainer = L.Trainer(accelerator=device.type, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[timer], log_every_n_steps=50)
    trainer.fit(model, train_dataloaders=ListLoader(data))
    return (timer.t1 - timer.t0) / (len(data) - args.warmup)


def time_plain(args, data, device) -> float:
    torch.manual_seed(0)
    model = make_vaal(args).to(device).train()
    opt_t, opt_v, opt_d = (torch.optim.Adam(m.parameters(), lr=5e-4)
                           for m in (model.task_model, model.vae, model.discriminator))
    hp = model.hparams
    t0 = None
    for i, batch in enumerate(data):
        x_l, y_l = batch["labeled"][0].to(device), batch["labeled"][1].to(device)
        x_u = batch["unlabeled"][0].to(device)
        # (1) task model, (2) VAE on Eq. 4, (3) discriminator on Eq. 3
        for player, opt, steps, objective in (
                (model.task_model, opt_t, 1, lambda: model.task_objective(x_l, y_l)),
                (model.vae, opt_v, hp.num_vae_steps, lambda: model.vae_objective(x_l, x_u)),
                (model.discriminator, opt_d, hp.num_adv_steps, lambda: model.discriminator_objective(x_l, x_u))):
            for p in model.parameters():  # freeze the other players (what toggle_optimizer does)
                p.requires_grad_(False)
            for p in player.parameters():
                p.requires_grad_(True)
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                loss = objective()
                loss.backward()
                opt.step()
                loss.item()  # the trainer logs every loss; match its host sync
        sync(device)
        if i + 1 == args.warmup:
            t0 = time.perf_counter()
    return (time.perf_counter() - t0) / (len(data) - args.warmup)


def time_queries(args, device) -> tuple[float, float]:
    dm = SyntheticDataModule(num_train=args.pool + args.pool // 10, num_test=8, num_classes=10,
                             image_size=args.image_size, channels=3, batch_size=64, eval_batch_size=args.eval_batch_size,
                             val_size=0)
    pool = ActivePoolDataModule(dm, initial_labeled=args.pool // 10)
    pool.setup()
    vaal = make_vaal(args).to(device)
    bald_model = Classifier(num_classes=10, in_channels=3, net=args.net,
                            net_args={**net_args(args), "dropout": 0.3}).to(device)
    budget = min(args.budget, pool.num_unlabeled)
    results = {}
    for name, strategy, module in (("vaal", VAALQuery(), vaal), ("bald", BALDStrategy(samples=args.mc_samples), bald_model)):
        strategy.select(None, module, pool, budget)  # warm-up (loader workers, kernels)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            strategy.select(None, module, pool, budget)
        sync(device)
        results[name] = (time.perf_counter() - t0) / args.repeats
    return results["vaal"], results["bald"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", default="small_cnn", help="task model (paper: vgg16_bn)")
    p.add_argument("--width", type=int, default=32, help="small_cnn width")
    p.add_argument("--vae-width", type=int, default=32, help="VAE base width (paper: 128)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds for (a)")
    p.add_argument("--pool", type=int, default=5000, help="unlabeled pool size for (b)")
    p.add_argument("--budget", type=int, default=500)
    p.add_argument("--eval-batch-size", type=int, default=500)
    p.add_argument("--mc-samples", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--skip", choices=["a", "b"], default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    device = torch.device(args.device)
    print(f"device={device} net={args.net} vae_width={args.vae_width} batch={args.batch_size} "
          f"image={args.image_size}px threads={torch.get_num_threads()}")
    if args.skip != "a":
        data = batches(args, args.iters)
        plain, trainer = float("inf"), float("inf")
        for _ in range(args.rounds):  # interleaved, best of each (shared machines drift)
            plain = min(plain, time_plain(args, data, device))
            trainer = min(trainer, time_trainer(args, data, device))
        print(f"(a) iteration: trainer {trainer * 1e3:.1f} ms, plain loop {plain * 1e3:.1f} ms, "
              f"ratio {trainer / plain:.3f} (goal <= 1.10)")
    if args.skip != "b":
        t_vaal, t_bald = time_queries(args, device)
        print(f"(b) query of {args.pool} unlabeled: VAAL {t_vaal:.2f} s, MC-dropout BALD (T={args.mc_samples}) "
              f"{t_bald:.2f} s, BALD / VAAL {t_bald / t_vaal:.2f}x (paper: 7.7x)")


if __name__ == "__main__":
    main()
