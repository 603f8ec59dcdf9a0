"""Query-engine speed, each against a baseline measured in the same run.

1. Entropy scoring of a pool through :func:`zerosum.query.score_pool` (the engine every scoring
   strategy uses: eval mode, no_grad, index bookkeeping, gather) vs. a plain ``torch.no_grad()``
   forward loop over the same pool, batch size and model. Prints samples/s of both and the ratio
   (goal >= 0.9).
2. Core-set (k-center greedy) against the memory-read limit: the time of one full read of the
   50,000 x 512 feature matrix (the fastest of three pure-read kernels: sum, amax, matrix-vector
   product with a ones vector), the time per greedy step (the k-center loop's time without its
   initial distances, divided by the picks), their ratio (goal <= 1.5), and the total for 2,500 picks
   with 1,000 labeled centres. The same for features stored in bfloat16 / float16, with the share of
   picks equal to float32's and the k-center radius (max distance to the nearest centre) of each.

    python benchmarks/query_throughput.py [--pool 20000] [--batch-size 500] [--device cpu]
    OMP_NUM_THREADS=1 python benchmarks/query_throughput.py --skip-scoring      # core-set only
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.utils.data import DataLoader

from zerosum.datamodules import IndexedDataset, TensorImageDataset
from zerosum.nets import build_net
from zerosum.query import EntropyStrategy, k_center_greedy, score_pool
from zerosum.query.coreset import LOW_PRECISION, initial_min_distances
from zerosum.query.uncertainty import entropy_score


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--width", type=int, default=16, help="small_cnn width")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--coreset-n", type=int, default=50_000)
    p.add_argument("--coreset-dim", type=int, default=512)
    p.add_argument("--coreset-k", type=int, default=2_500)
    p.add_argument("--coreset-labeled", type=int, default=1_000)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip-scoring", action="store_true", help="only the core-set part")
    p.add_argument("--rounds", type=int, default=15, help="interleaved (read, greedy run) pairs for the ratio")
    p.add_argument("--steps", type=int, default=20, help="greedy steps per timed run")
    p.add_argument("--precisions", nargs="*", default=["bfloat16", "float16"], help="low-precision variants to time")
    args = p.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")

    if not args.skip_scoring:
        entropy_scoring(args, device)
    coreset(args, device)


def entropy_scoring(args, device: torch.device) -> None:
    """1. entropy scoring through the engine vs a plain no_grad loop."""
    images = torch.randint(0, 256, (args.pool, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.pool,))
    dataset = IndexedDataset(TensorImageDataset(images, labels, transform=lambda x: x.float().div_(255)))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    model = build_net("small_cnn", 10, 3, width=args.width).to(device).eval()
    strategy = EntropyStrategy()

    def plain() -> None:
        out = []
        with torch.no_grad():
            for x, _, _ in loader:
                out.append(entropy_score(model(x.to(device))).cpu())
        torch.cat(out)

    def engine() -> None:
        score_pool(None, model, loader, strategy.score_batch)

    plain()  # warm-up
    best = {"plain": float("inf"), "engine": float("inf")}
    for _ in range(args.repeats):  # interleaved, best of n: robust to a shared machine
        for name, fn in (("plain", plain), ("engine", engine)):
            best[name] = min(best[name], _timed(fn, device))
    sps = {k: args.pool / v for k, v in best.items()}
    print(f"entropy scoring, pool {args.pool}, batch {args.batch_size}, small_cnn width {args.width}:")
    print(f"  plain no_grad loop : {sps['plain']:9.0f} samples/s")
    print(f"  score_pool engine  : {sps['engine']:9.0f} samples/s")
    print(f"  ratio engine/plain : {sps['engine'] / sps['plain']:.3f}   (goal >= 0.9)")


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def read_time(u: torch.Tensor, device: torch.device, repeats: int = 10) -> float:
    """One full read of ``u``: the fastest of three pure-read kernels, best of ``repeats``."""
    ones = torch.ones(u.shape[1], device=device, dtype=u.dtype)
    kernels = (lambda: u.sum(), lambda: u.amax(), lambda: u @ ones)
    return min(_timed(k, device) for _ in range(repeats) for k in kernels)


def radius(u: torch.Tensor, lab: torch.Tensor, picks: torch.Tensor) -> float:
    """The k-center objective: the largest distance of a candidate to its nearest centre."""
    centres = torch.cat([lab, u[picks]])
    d = initial_min_distances(u, (u * u).sum(1), centres, chunk=512)
    return float(d.max().sqrt())


def coreset(args, device: torch.device) -> None:
    """2. core-set k-center greedy against the memory-read limit. The ratio is taken from interleaved
    measurements (a read, then a short greedy run without initial distances, repeated), medians of
    each, so a shared machine's load hits both alike; then the full selection is timed once."""
    g = torch.Generator().manual_seed(0)
    unl = torch.randn(args.coreset_n, args.coreset_dim, generator=g).to(device)
    lab = torch.randn(args.coreset_labeled, args.coreset_dim, generator=g).to(device)
    print(f"core-set k-center greedy: {args.coreset_n} x {args.coreset_dim} features, {args.coreset_labeled} labeled "
          f"centres, {args.coreset_k} picks, device {device}, {torch.get_num_threads()} threads")
    reference = None
    for precision in ["float32", *args.precisions]:
        u = unl if precision == "float32" else unl.to(LOW_PRECISION[precision])
        mb = u.numel() * u.element_size() / 2**20
        reads, steps = [], []
        for _ in range(args.rounds):  # interleaved: one read, then `steps` greedy steps (no labeled centres)
            reads.append(read_time(u, device, repeats=1))
            greedy = lambda: k_center_greedy(unl, None, args.steps, precision=precision)  # noqa: E731
            steps.append(_timed(greedy, device) / args.steps)
        read, step = statistics.median(reads), statistics.median(steps)
        t0 = time.perf_counter()
        picks = k_center_greedy(unl, lab, args.coreset_k, precision=precision)
        if device.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - t0
        assert picks.unique().numel() == args.coreset_k
        line = (f"  {precision:8s}: features {mb:6.1f} MB | one read {read * 1e3:7.2f} ms | per greedy step "
                f"{step * 1e3:7.2f} ms | ratio {step / read:5.2f} (goal <= 1.5) | total for {args.coreset_k} picks "
                f"{total:6.1f} s")
        if reference is None:
            reference = picks
        else:
            line += f" | picks equal to float32's: {float((picks.cpu() == reference.cpu()).float().mean()):.1%}"
        print(line)
        print(f"            k-center radius of the selection {radius(unl.float(), lab.float(), picks.to(device)):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
