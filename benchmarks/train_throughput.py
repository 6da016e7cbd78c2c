"""Training-loop throughput against references measured in the same run.

MNIST-shaped random data (60,000 x 784, 10 classes), the 784-128-10 MLP, SGD.

1. samples/s of our loop (`reprotrain.models.torch_loop.train_epoch` with `make_optimizer`'s
   SGD: in-memory index batches, plain autograd, `optimizer.step()` of the fused SGD) over
   the plain `DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)` loop with
   `torch.optim.SGD`, batch 64. Floor: >= 1.5x. Also shown: the minimal in-memory loop
   (the same batches, autograd, fused SGD, nothing else), the speed a loop without a
   DataLoader gets from torch alone.
2. At batch 256: model FLOP/s (6 x parameter count per sample) as a share of the FLOP/s
   of a 2048 x 2048 float32 matmul. Floor: >= 80%.
3. `train.compile`: our loop with the net through `torch.compile`, batch 64 and 256
   (compilation excluded: one warm-up epoch first). Reported, no floor.

Both loops run with the same torch thread count: by default `base.threads` of params.yaml,
the count the pipeline trains with (1 unless changed); `--threads N` for another.
Results: printed, and written to benchmarks/results/train_throughput.md.

Run: .venv/bin/python benchmarks/train_throughput.py [--threads N] [--repeats R (default 7:
epochs per loop, interleaved; the medians give the ratios)] [--no-compile]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from bench_args import positive_int
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from reprotrain import config
from reprotrain.models.torch_loop import LoopConfig, make_optimizer, train_epoch

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.md"

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


def minimal_epoch(net, data, batch_size: int) -> float:
    """The shortest correct loop on the same batches: index_select rows, autograd, the
    fused SGD step. What our loop costs beyond torch's own per-batch work."""
    features, targets = data
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, fused=True)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for index in order.split(batch_size):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(features.index_select(0, index)), targets.index_select(0, index))
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def loop_config(batch_size: int) -> LoopConfig:
    """params.yaml's train section, with the benchmark's SGD and batch size."""
    (train,) = config.load("train")
    optim = train.optim.model_copy(
        update={"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": batch_size}
    )
    schedule = train.schedule.model_copy(update={"kind": "none"})
    return LoopConfig(optim=optim, stopping=train.early_stopping, schedule=schedule)


def our_epoch(net, data, batch_size: int) -> float:
    loop = loop_config(batch_size)
    optimizer = make_optimizer(net, loop.optim)  # the loop's own: fused SGD on CPU and CUDA
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
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
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
    compiled = None if args.no_compile else torch.compile(net)  # shares net's parameters
    lines = [f"threads: {args.threads} (every loop); epochs per loop: {args.repeats} (medians)"]

    # Interleave ours and the reference so machine noise hits both alike.
    ours, reference, minimal, ours_compiled = [], [], [], []
    if compiled is not None:
        our_epoch(compiled, data, 64)  # compilation, not timed
    for _ in range(args.repeats):
        reference.append(median_time(lambda: dataloader_epoch(net, data, 64), 1))
        ours.append(median_time(lambda: our_epoch(net, data, 64), 1))
        minimal.append(median_time(lambda: minimal_epoch(net, data, 64), 1))
        if compiled is not None:
            ours_compiled.append(median_time(lambda: our_epoch(compiled, data, 64), 1))
    speedup = statistics.median(reference) / statistics.median(ours)
    lines.append(
        f"batch 64: ours {N_ROWS / statistics.median(ours):,.0f} samples/s, DataLoader "
        f"{N_ROWS / statistics.median(reference):,.0f} samples/s -> {speedup:.2f}x "
        f"(floor 1.5x) {'PASS' if speedup >= 1.5 else 'FAIL'}"
    )
    lines.append(
        f"batch 64: the minimal in-memory loop {N_ROWS / statistics.median(minimal):,.0f} "
        f"samples/s -> ours at {statistics.median(minimal) / statistics.median(ours):.2f}x its "
        "speed (what the loop's own work costs)"
    )
    if ours_compiled:
        ratio = statistics.median(ours) / statistics.median(ours_compiled)
        lines.append(
            f"batch 64, train.compile: {N_ROWS / statistics.median(ours_compiled):,.0f} "
            f"samples/s -> {ratio:.2f}x ours without it"
        )

    epoch_256 = median_time(lambda: our_epoch(net, data, 256), args.repeats)
    model_flops = 6 * n_params * N_ROWS / epoch_256
    peak = statistics.median(matmul_flops() for _ in range(args.repeats))
    share = model_flops / peak
    lines.append(
        f"batch 256: model {model_flops / 1e9:.1f} GFLOP/s (6 x {n_params:,} params per "
        f"sample), 2048^2 matmul {peak / 1e9:.1f} GFLOP/s -> {share:.0%} (floor 80%) "
        f"{'PASS' if share >= 0.8 else 'FAIL'}"
    )
    if compiled is not None:
        our_epoch(compiled, data, 256)  # a new batch size may recompile: not timed
        compiled_256 = median_time(lambda: our_epoch(compiled, data, 256), args.repeats)
        lines.append(
            f"batch 256, train.compile: {6 * n_params * N_ROWS / compiled_256 / 1e9:.1f} "
            f"GFLOP/s -> {epoch_256 / compiled_256:.2f}x ours without it"
        )
    print("\n".join(lines))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        "# benchmarks/train_throughput.py\n\n"
        "`.venv/bin/python benchmarks/train_throughput.py` on "
        f"{platform.machine()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}:\n\n"
        + "".join(f"- {line}\n" for line in lines)
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
