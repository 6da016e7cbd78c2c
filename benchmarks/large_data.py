"""Larger than a toy: prepare, split and train on a generated 1,000,000 x 50 mixed CSV.

    python benchmarks/large_data.py [--rows 1000000] [--small 100000] [--keep]

Generates (in a temporary directory, never in the repository) a CSV of `--rows` rows and
50 columns: 30 floats, 8 integers, 6 text columns (3 to 200 categories), 2 booleans,
2 dates, 1 identifier-like text column, and a 3-class label; every feature column has
missing values. The first `--small` rows make the small dataset. On each, it runs the
real stage commands `prepare`, `split`, and `train` with `hist_gradient_boosting` and with
the torch `mlp` (2 epochs), each in its own process, and measures each process's wall time
and peak resident memory (`os.wait4`'s ru_maxrss).

Reports, measured in this one run:
- peak memory of each stage on the large data as a multiple of the in-memory size of the
  data (the prepared frame as pandas holds it, `memory_usage(deep=True)`); floor <= 3x;
- the marginal multiple, (peak large - peak small) / (size large - size small): memory per
  byte of data with the interpreter and its libraries taken out;
- the time ratio large / small per stage; floor <= 11x for 10x the rows (linear).

Exit status 1 when a floor is missed, 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from bench_args import positive_int

REPO = Path(__file__).resolve().parents[1]
MEMORY_FLOOR = 3.0
TIME_FLOOR = 11.0
CHUNK = 100_000
CATEGORY_SIZES = (3, 5, 10, 20, 50, 200)
TRAIN_RUNS = {
    "train (hist_gradient_boosting)": "hist_gradient_boosting",
    "train (mlp)": "mlp",
}


@dataclass
class Run:
    stage: str
    seconds: float
    peak_bytes: int


def chunk_table(start: int, rows: int, seed: int):
    """Rows [start, start + rows) of the generated table, as an Arrow table."""
    import pyarrow as pa

    rng = np.random.default_rng([seed, start])
    columns: dict[str, pa.Array] = {}

    def gaps(share: float) -> np.ndarray:
        return rng.random(rows) < share

    floats = rng.normal(size=(rows, 30))
    for index in range(30):
        columns[f"f{index:02d}"] = pa.array(floats[:, index], mask=gaps(0.05))
    for index in range(8):
        columns[f"i{index}"] = pa.array(rng.integers(0, 1000, rows), mask=gaps(0.03))
    codes = []
    for index, size in enumerate(CATEGORY_SIZES):
        values = np.array([f"c{index}_{value}" for value in range(size)], dtype=object)
        picked = rng.integers(0, size, rows)
        codes.append(picked)
        columns[f"c{index}"] = pa.array(values[picked], type=pa.string(), mask=gaps(0.04))
    for index in range(2):
        columns[f"b{index}"] = pa.array(rng.random(rows) < 0.5, mask=gaps(0.02))
    for index in range(2):
        days = rng.integers(16_000, 19_650, rows).astype(np.int32)  # 2013 .. 2023
        columns[f"d{index}"] = pa.array(days, type=pa.date32(), mask=gaps(0.02))
    columns["id"] = pa.array([f"row-{start + row}" for row in range(rows)], type=pa.string())
    signal = floats[:, 0] + 0.8 * floats[:, 1] - 0.5 * floats[:, 2] + (codes[1] - 2) * 0.4
    signal += rng.normal(scale=0.5, size=rows)
    columns["label"] = pa.array(np.digitize(signal, [-0.7, 0.7]).astype(np.int64))
    return pa.table(columns)


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """A mixed-type CSV with missing values, written chunk by chunk (bounded memory)."""
    import pyarrow.csv as pacsv

    writer = None
    for start in range(0, rows, CHUNK):
        table = chunk_table(start, min(CHUNK, rows - start), seed)
        if writer is None:
            writer = pacsv.CSVWriter(str(path), table.schema)
        writer.write_table(table)
    writer.close()


def params(model: str) -> dict:
    return {
        "base": {"seed": 0, "threads": 1},
        "prepare": {"source": "data.csv", "target": "label"},
        "split": {"train": 0.6, "dev": 0.2, "test": 0.2},
        "train": {
            "model": model,
            "seeds": [0],
            "device": "cpu",
            "checkpoint": False,
            "progress": "off",
            "mlp": {"hidden_sizes": [64], "dropout": 0.0},
            "optim": {"batch_size": 1024, "epochs": 2},
            "hist_gradient_boosting": {"max_iter": 30, "early_stopping": False},
        },
        # Trees split on category codes: one-hot columns would only cost memory.
        "features": {"categorical": "ordinal" if model == "hist_gradient_boosting" else "onehot"},
        "learning_curve": {"fractions": []},
    }


def run_stage(directory: Path, stage: str, module: str) -> Run:
    """Run `python -m <module>` in `directory`; its wall time and peak RSS."""
    import subprocess

    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MLFLOW_TRACKING_URI": f"sqlite:///{directory / 'mlflow.db'}",
    }
    log = (directory / f"{module}.log").open("ab")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", module], cwd=directory, env=env, stdout=log, stderr=log
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    if process.returncode != 0:
        tail = (directory / f"{module}.log").read_text().splitlines()[-5:]
        raise RuntimeError(f"{module} failed in {directory}:\n" + "\n".join(tail))
    return Run(stage, seconds, usage.ru_maxrss * 1024)  # Linux: kilobytes


def data_bytes(directory: Path) -> int:
    """In-memory size of the prepared data, as the stages hold it."""
    sys.path.insert(0, str(REPO))
    from reprotrain.data.tables import read_frame

    frame = read_frame(directory / "data" / "prepared" / "data.parquet")
    return int(frame.memory_usage(deep=True).sum())


def measure(directory: Path, rows: int) -> tuple[list[Run], int]:
    directory.mkdir(parents=True)
    started = time.perf_counter()
    generate(directory / "data.csv", rows)
    print(
        f"{rows:>9,} rows: CSV {os.path.getsize(directory / 'data.csv') / 2**20:,.0f} MiB "
        f"generated in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    (directory / "params.yaml").write_text(yaml.safe_dump(params("mlp")))
    runs = [run_stage(directory, "prepare", "stages.prepare")]
    runs.append(run_stage(directory, "split", "stages.split"))
    for stage, model in TRAIN_RUNS.items():
        (directory / "params.yaml").write_text(yaml.safe_dump(params(model)))
        runs.append(run_stage(directory, stage, "stages.train"))
    for run in runs:
        print(
            f"  {run.stage:32s} {run.seconds:7.1f} s  {run.peak_bytes / 2**20:8.0f} MiB", flush=True
        )
    return runs, data_bytes(directory)


def report(small: list[Run], large: list[Run], small_bytes: int, large_bytes: int) -> bool:
    print(
        f"\nin-memory data: {small_bytes / 2**20:,.0f} MiB (small), "
        f"{large_bytes / 2**20:,.0f} MiB (large)"
    )
    header = f"{'stage':32s} {'peak/data':>10s} {'marginal':>9s} {'time ratio':>11s}"
    print(header + "\n" + "-" * len(header))
    ok = True
    for before, after in zip(small, large, strict=True):
        multiple = after.peak_bytes / large_bytes
        marginal = (after.peak_bytes - before.peak_bytes) / (large_bytes - small_bytes)
        ratio = after.seconds / before.seconds
        ok &= multiple <= MEMORY_FLOOR and ratio <= TIME_FLOOR
        print(f"{after.stage:32s} {multiple:9.2f}x {marginal:8.2f}x {ratio:10.2f}x")
    total = sum(run.seconds for run in large) / sum(run.seconds for run in small)
    print(f"{'all stages':32s} {'':>10s} {'':>9s} {total:10.2f}x")
    print(
        f"floors: peak/data <= {MEMORY_FLOOR:g}x, time ratio <= {TIME_FLOOR:g}x: "
        + ("met" if ok else "MISSED")
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive_int, default=1_000_000)
    parser.add_argument("--small", type=positive_int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="reprotrain-large-"))
    try:
        small, small_bytes = measure(root / "small", args.small)
        large, large_bytes = measure(root / "large", args.rows)
    except RuntimeError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if report(small, large, small_bytes, large_bytes) else 1


if __name__ == "__main__":
    sys.exit(main())
