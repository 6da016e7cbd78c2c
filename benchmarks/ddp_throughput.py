"""Training throughput on 2 CPU processes (torchrun, DDP, gloo) against 1, same global batch.

    python benchmarks/ddp_throughput.py [--epochs 5] [--batch-size 64] [--model cnn]

Fits a torch model on all 1797 digits rows (dev = the same rows: only the speed is
measured) through the project's own loop
(Model.fit), once in this process and once under `torchrun --standalone --nproc_per_node 2`,
each with base.threads = 1 per process, and prints training samples per second (rows x
epochs / fit seconds) and the ratio. On a 2-core machine a ratio near 1 is expected: the
point is the figure and that the path works. Results: benchmarks/results/ddp_throughput.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "ddp_throughput.md"


def fit_once(args: argparse.Namespace) -> float:
    """Samples per second of one fit in this process (under torchrun: this rank's view)."""
    import numpy as np
    import repo_params
    import torch

    from reprotrain.config.params import parse_section
    from reprotrain.data import datasets
    from reprotrain.models.model import FitOptions, build_model

    torch.set_num_threads(1)
    frame, target, image_shape = datasets.load_source("sklearn:digits", None)
    schema = datasets.build_schema(frame, target, "classification", "digits", image_shape)
    x = np.array(frame.drop(columns=[target]), dtype=np.float32)
    y = frame[target].to_numpy()
    train = repo_params.merged(
        {
            "train": {
                "model": args.model,
                "seeds": [0],
                "device": "cpu",
                "checkpoint": False,
                "progress": "off",
                "optim": {"epochs": args.epochs, "batch_size": args.batch_size},
                "early_stopping": {"patience": args.epochs},
            }
        }
    )["train"]
    params = parse_section("train", train)
    model = build_model(params, schema, seed=0)
    start = time.perf_counter()
    model.fit((x, y), (x, y), FitOptions(image_shape=image_shape))
    return len(x) * args.epochs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="cnn", choices=["mlp", "cnn"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        rate = fit_once(args)
        if os.environ.get("RANK", "0") == "0":
            print(json.dumps({"samples_per_s": rate}))
        return
    one = fit_once(args)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", __file__, "--worker", *sys.argv[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    two = json.loads(done.stdout.strip().splitlines()[-1])["samples_per_s"]
    lines = [
        "# DDP throughput (benchmarks/ddp_throughput.py)",
        "",
        f"{args.model} on digits, {args.epochs} epochs, global batch {args.batch_size}, "
        f"1 thread per process, {os.cpu_count()} CPUs",
        "",
        "| processes | training samples/s |",
        "|---|---|",
        f"| 1 | {one:.0f} |",
        f"| 2 (torchrun, gloo) | {two:.0f} |",
        "",
        f"ratio 2 / 1: {two / one:.2f}",
    ]
    print("\n".join(lines))
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]
    main()
