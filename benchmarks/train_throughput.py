"""Training-loop throughput against references measured in the same run.

MNIST-shaped random data (60,000 x 784, 10 classes), the 784-128-10 MLP, SGD.

1. samples/s of our loop (`reprotrain.models.torch_loop.train_epoch` with `make_optimizer`'s SGD:
   in-memory index batches, MLP gradients by hand, fused optimizer update) over the plain
   `DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)` loop with
   `torch.optim.SGD`, batch 64. Floor: >= 1.8x. Also shown, not judged: our loop with
   autograd's gradients (`LoopConfig.hand_gradients=False`).
2. At batch 256: model FLOP/s (6 x parameter count per sample) as a share of the FLOP/s
   of a 2048 x 2048 float32 matmul. Floor: >= 60%.

Both loops run with the same torch thread count: by default `base.threads` of params.yaml,
the count the pipeline trains with (1 unless changed); `--threads N` for another.

Run: .venv/bin/python benchmarks/train_throughput.py [--threads N] [--repeats R (default 7:
epochs per loop, interleaved; the medians give the ratios)]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_args import positive_int
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from reprotrain import config
from reprotrain.config import EarlyStoppingParams, OptimParams
from reprotrain.models.torch_loop import LoopConfig, make_optimizer, train_epoch

N_ROWS, N_FEATURES, N_CLASSES = 60_000, 784, 10


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(N_FEATURES, 128), nn.ReLU(), nn.Linear(128, N_CLASSES))


def dataloader_epoch(net, data, batch_size: int) -> float:
    features, targets = data
    loader = DataLoader(TensorDataset(features, targets), batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for batch_x, batch_y in loader:
        loss = loss_fn(net(batch_x), batch_y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def our_epoch(net, data, batch_size: int, hand_gradients: bool = True) -> float:
    optim = OptimParams(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=batch_size)
    loop = LoopConfig(optim=optim, stopping=EarlyStoppingParams(), hand_gradients=hand_gradients)
    optimizer = make_optimizer(net, optim)  # the loop's own: fused SGD on CPU and CUDA
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    train_epoch(net, nn.CrossEntropyLoss(), optimizer, data, loop, generator)
    return time.perf_counter() - start


def matmul_flops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads for both loops (default: base.threads of params.yaml, as the "
        "pipeline trains)",
    )
    parser.add_argument("--repeats", type=positive_int, default=7)
    args = parser.parse_args()
    if args.threads is None:
        (base,) = config.load("base")
        args.threads = base.threads
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    data = (
        torch.randn(N_ROWS, N_FEATURES, generator=generator),
        torch.randint(0, N_CLASSES, (N_ROWS,), generator=generator),
    )
    net = make_net()
    n_params = sum(p.numel() for p in net.parameters())

    # Interleave ours and the reference so machine noise hits both alike.
    ours, autograd, reference = [], [], []
    for _ in range(args.repeats):
        reference.append(median_time(lambda: dataloader_epoch(net, data, 64), 1))
        ours.append(median_time(lambda: our_epoch(net, data, 64), 1))
        autograd.append(median_time(lambda: our_epoch(net, data, 64, hand_gradients=False), 1))
    speedup = statistics.median(reference) / statistics.median(ours)
    batching_only = statistics.median(reference) / statistics.median(autograd)
    print(f"threads: {args.threads} (both loops)")
    print(
        f"batch 64: ours {N_ROWS / statistics.median(ours):,.0f} samples/s, DataLoader "
        f"{N_ROWS / statistics.median(reference):,.0f} samples/s -> {speedup:.2f}x "
        f"(floor 1.8x) {'PASS' if speedup >= 1.8 else 'FAIL'}"
    )
    print(
        f"batch 64: ours with autograd's gradients {N_ROWS / statistics.median(autograd):,.0f} "
        f"samples/s -> {batching_only:.2f}x the DataLoader (in-memory batches alone)"
    )

    epoch_256 = median_time(lambda: our_epoch(net, data, 256), args.repeats)
    model_flops = 6 * n_params * N_ROWS / epoch_256
    peak = statistics.median(matmul_flops() for _ in range(args.repeats))
    share = model_flops / peak
    print(
        f"batch 256: model {model_flops / 1e9:.1f} GFLOP/s (6 x {n_params:,} params per "
        f"sample), 2048^2 matmul {peak / 1e9:.1f} GFLOP/s -> {share:.0%} (floor 60%) "
        f"{'PASS' if share >= 0.6 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
