"""Query-engine speed, each against a baseline measured in the same run.

1. Entropy scoring of a pool through :func:`zerosum.query.score_pool` (the engine every scoring
   strategy uses: eval mode, no_grad, index bookkeeping, gather) vs. a plain ``torch.no_grad()``
   forward loop over the same pool, batch size and model. Prints samples/s of both and the ratio
   (goal >= 0.9).
2. Core-set (k-center greedy) selection time for 50,000 x 512 features picking 2,500.

    python benchmarks/query_throughput.py [--pool 20000] [--batch-size 500] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.data import DataLoader

from zerosum.datamodules import IndexedDataset, TensorImageDataset
from zerosum.nets import build_net
from zerosum.query import EntropyStrategy, k_center_greedy, score_pool
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
    args = p.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")

    # ---- 1. entropy scoring vs a plain no_grad loop ---------------------------------------------
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
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - t0)
    sps = {k: args.pool / v for k, v in best.items()}
    print(f"entropy scoring, pool {args.pool}, batch {args.batch_size}, small_cnn width {args.width}:")
    print(f"  plain no_grad loop : {sps['plain']:9.0f} samples/s")
    print(f"  score_pool engine  : {sps['engine']:9.0f} samples/s")
    print(f"  ratio engine/plain : {sps['engine'] / sps['plain']:.3f}   (goal >= 0.9)")

    # ---- 2. core-set selection time --------------------------------------------------------------
    unl = torch.randn(args.coreset_n, args.coreset_dim, device=device)
    lab = torch.randn(args.coreset_labeled, args.coreset_dim, device=device)
    t0 = time.perf_counter()
    picks = k_center_greedy(unl, lab, args.coreset_k)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    assert picks.unique().numel() == args.coreset_k
    print(f"core-set k-center greedy: {args.coreset_n} x {args.coreset_dim} features "
          f"({args.coreset_labeled} labeled), picking {args.coreset_k}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
