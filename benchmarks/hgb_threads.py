"""HistGradientBoosting fit time under `base.threads: 1` against OpenMP's default.

    python benchmarks/hgb_threads.py [--rows 20000] [--rounds 3]

Fits the same HistGradientBoostingClassifier (100 iterations, scikit-learn defaults otherwise)
on random data, in interleaved rounds: capped to one thread as `base.threads: 1` does
(reprotrain.training.fitting.configure_threads, through threadpoolctl) and uncapped (OpenMP's
default: every core). Prints the medians and their ratio (no floor: it shows what the cap
costs on this machine), and writes benchmarks/results/hgb_threads.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from bench_args import positive_int
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

RESULTS = Path(__file__).parent / "results" / "hgb_threads.md"


def fit_seconds(features: np.ndarray, targets: np.ndarray, limit: int | None) -> float:
    model = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0)
    with threadpool_limits(limits=limit, user_api="openmp"):
        start = time.perf_counter()
        model.fit(features, targets)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive_int, default=20000)
    parser.add_argument("--rounds", type=positive_int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.rows, 40))
    targets = (features[:, :5].sum(axis=1) + rng.normal(size=args.rows) > 0).astype(int)
    times: dict[str, list[float]] = {"threads 1": [], "OpenMP default": []}
    for _ in range(args.rounds):
        times["threads 1"].append(fit_seconds(features, targets, 1))
        times["OpenMP default"].append(fit_seconds(features, targets, None))
    one, default = (statistics.median(times[key]) for key in times)
    lines = [
        "# HistGradientBoosting fit: base.threads 1 vs OpenMP's default",
        "",
        f"{args.rows} rows x 40 features, 100 iterations, {args.rounds} interleaved rounds, "
        f"{os.cpu_count()} CPUs",
        "",
        "| threads | median fit (s) |",
        "|---|---|",
        f"| 1 (base.threads: 1) | {one:.2f} |",
        f"| OpenMP default | {default:.2f} |",
        "",
        f"ratio threads 1 / default: {one / default:.2f}x",
    ]
    print("\n".join(lines))
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
