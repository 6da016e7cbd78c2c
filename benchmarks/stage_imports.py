"""Import cost of the data stages: `prepare` and `split` must import neither torch nor MLflow.

    python benchmarks/stage_imports.py [--rounds 5]

Each import runs in a fresh interpreter (nothing cached in-process); rounds are interleaved and
the median is reported as a ratio to `import pandas`, which both stages need anyway.
Exit 1 if either stage pulls in a forbidden module.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from bench_args import positive_int

REPO = Path(__file__).resolve().parents[1]
MODULES = ("stages.prepare", "stages.split")
BASELINE = "pandas"
FORBIDDEN = ("torch", "mlflow")
REPORTED = ("torch", "mlflow", "optuna", "sklearn", "matplotlib", "pyarrow")

PROBE = """
import json, sys, time
start = time.perf_counter()
import {module}
seconds = time.perf_counter() - start
modules = sorted(m for m in {reported!r} if m in sys.modules)
print(json.dumps({{"seconds": seconds, "modules": modules}}))
"""


def probe(module: str) -> dict:
    """Import `module` in a fresh interpreter; its wall time and which heavy packages it loaded."""
    code = PROBE.format(module=module, reported=REPORTED)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"error: import {module}: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=positive_int, default=5, help="interleaved rounds (default 5)"
    )
    args = parser.parse_args(argv)

    names = (BASELINE, *MODULES)
    times: dict[str, list[float]] = {name: [] for name in names}
    loaded: dict[str, list[str]] = {}
    probe(BASELINE)  # warm the page cache so the first timed round is not an outlier
    for _ in range(args.rounds):
        for name in names:
            result = probe(name)
            times[name].append(result["seconds"])
            loaded[name] = result["modules"]

    base = statistics.median(times[BASELINE])
    print(f"import time, median of {args.rounds} fresh interpreters (ratio to import {BASELINE}):")
    for name in names:
        median = statistics.median(times[name])
        heavy = ", ".join(loaded[name]) or "none"
        print(f"  {name:16s} {median:6.3f} s  {median / base:5.2f}x  loads: {heavy}")

    bad = {name: sorted(set(loaded[name]) & set(FORBIDDEN)) for name in MODULES}
    bad = {name: mods for name, mods in bad.items() if mods}
    for name, mods in bad.items():
        print(f"error: {name}: imports {', '.join(mods)}; allowed: none of {', '.join(FORBIDDEN)}")
    if not bad:
        print(f"ok: {' and '.join(MODULES)} import neither {' nor '.join(FORBIDDEN)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
