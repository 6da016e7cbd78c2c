"""Right by default on tabular data: the whole pipeline with only `prepare.source` set.

    python benchmarks/defaults_floors.py [--datasets breast_cancer wine diabetes] [--rev HEAD]

For each of scikit-learn's bundled tables, the committed pipeline (HEAD, or --rev) is cloned
into a temporary directory and run with `dvc repro` twice, interleaved:
(a) the defaults: `train.model: auto` (gradient boosting and a scaled linear model, chosen
    on dev), `tune.space: auto` (the chosen model's default space);
(b) the reference: `train.model` set to the plain linear model (logistic regression or
    ridge), its own default space.
Each run's selected test score (metrics/summary.json) and wall time are recorded; the wall
ratio (a) / (b) is measured in the same run, so machine noise cancels. Floors: breast_cancer
accuracy >= 0.975, wine accuracy >= 0.98, diabetes R^2 >= 0.44, wall <= 3x the reference.
The test set is only read by `evaluate`, as always: nothing here is tuned on it. Results:
printed, and written to benchmarks/results/defaults_floors.{json,md}. Exit 1 if a floor is
missed, 2 if the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
FLOORS = {"breast_cancer": 0.975, "wine": 0.98, "diabetes": 0.44}
REFERENCE_MODEL = {"classification": "logistic_regression", "regression": "linear_regression"}
TASKS = {"breast_cancer": "classification", "wine": "classification", "diabetes": "regression"}
WALL_FLOOR = 3.0


def run_pipeline(rev: str, dataset: str, model: str, workdir: Path) -> dict[str, float]:
    """One full `dvc repro` of a fresh clone: the selected test score and the wall time."""
    repo = workdir / f"{dataset}-{model}"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", rev], check=True)
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["prepare"]["source"] = f"sklearn:{dataset}"
    params["train"]["model"] = model
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"{dataset} ({model}): dvc repro failed: {' | '.join(tail)}")
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    train = json.loads((repo / "metrics" / "train.json").read_text())
    evaluate = json.loads((repo / "metrics" / "evaluate.json").read_text())
    primary = evaluate["primary_metric"]
    return {
        "test": summary["selected"]["test"][primary],
        "test_ci_low": summary["selected"]["test"].get(f"{primary}_ci_low", float("nan")),
        "strong_baseline_test": summary["strong_baseline"]["test"][primary],
        "selected": evaluate["selected"]["model"],
        "model_choice": train.get("model_choice", {}).get("chosen", model),
        "n_test": evaluate["n_test"],
        "wall_s": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(FLOORS), choices=list(FLOORS))
    parser.add_argument("--rev", default="HEAD")
    args = parser.parse_args()
    rows, missed = [], []
    with tempfile.TemporaryDirectory(prefix="defaults-floors-") as tmp:
        for dataset in args.datasets:
            try:
                auto = run_pipeline(args.rev, dataset, "auto", Path(tmp))
                reference = run_pipeline(
                    args.rev, dataset, REFERENCE_MODEL[TASKS[dataset]], Path(tmp)
                )
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            ratio = auto["wall_s"] / reference["wall_s"]
            row = {
                "dataset": dataset,
                "floor": FLOORS[dataset],
                "auto": auto,
                "reference": reference,
                "wall_ratio": ratio,
                "score_met": auto["test"] >= FLOORS[dataset],
                "wall_met": ratio <= WALL_FLOOR,
            }
            rows.append(row)
            if not (row["score_met"] and row["wall_met"]):
                missed.append(dataset)
            print(
                f"{dataset}: auto test {auto['test']:.4f} (floor {FLOORS[dataset]}, "
                f"{auto['selected']} {auto['model_choice']}, strong baseline "
                f"{auto['strong_baseline_test']:.4f}), reference {reference['test']:.4f}; wall "
                f"{auto['wall_s']:.0f} s vs {reference['wall_s']:.0f} s = {ratio:.2f}x "
                f"(floor {WALL_FLOOR}x)"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "defaults_floors.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# Defaults floors (benchmarks/defaults_floors.py)",
        "",
        "| dataset | auto test (floor) | chosen | strong baseline | reference test | wall ratio |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        auto, reference = row["auto"], row["reference"]
        lines.append(
            f"| {row['dataset']} | {auto['test']:.4f} ({row['floor']}) | {auto['selected']} "
            f"{auto['model_choice']} | {auto['strong_baseline_test']:.4f} | "
            f"{reference['test']:.4f} | {row['wall_ratio']:.2f}x |"
        )
    (RESULTS / "defaults_floors.md").write_text("\n".join(lines) + "\n")
    if missed:
        print(f"floors missed: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
