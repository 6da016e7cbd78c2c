"""Right by default on tabular data: the whole pipeline with only `prepare.source` set,
against scikit-learn's default models fitted on the same splits.

    python benchmarks/defaults_floors.py [--datasets breast_cancer wine diabetes]
        [--seeds 42 43 44 45 46] [--rev HEAD]

For each dataset and each seed, the committed pipeline (HEAD, or --rev) is cloned into a
temporary directory, `prepare.source: sklearn:<dataset>` and `base.seed: <seed>` (which
seeds the split) are set in params.yaml, nothing else, and `dvc repro` runs; its wall time
and the selected model's test score (metrics/summary.json, the primary metric: accuracy or
R^2) are recorded, with the model chosen and the strong baseline's test score.

On the same split files of that run, four scikit-learn references with default
hyperparameters are fitted on train + dev and scored on test: histogram gradient boosting,
random forest, scaled logistic regression / ridge and a scaled SVC / SVR. They fit under
`threadpool_limits(1)`, as the pipeline does with its default `base.threads: 1`. Their time
is taken twice: (a) the four fits and predictions, in this process; (b) a whole Python
process that imports scikit-learn and pandas, reads the split files and fits the four.

Per dataset, over the seeds: the pipeline's mean test score must reach the fixed floor
(breast_cancer accuracy 0.975, wine 0.98, diabetes R^2 0.44, digits 0.99) and the best
reference's mean (two checks, reported apart); the mean `dvc repro` wall must be at most 3x
the mean wall of (a). The pipeline's wall includes five stage processes, MLflow logging and
tuning, so the ratio to (b), start and imports included, is reported beside it (no floor).
The test set is only read by `evaluate` and here after each run: nothing is tuned on it.
Results: printed, and written to benchmarks/results/defaults_floors.{json,md} (every
per-seed row; the table). Exit 1 if a floor is missed, 2 if the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
FLOORS = {"breast_cancer": 0.975, "wine": 0.98, "diabetes": 0.44, "digits": 0.99}
DEFAULT_DATASETS = ["breast_cancer", "wine", "diabetes"]
DEFAULT_SEEDS = [42, 43, 44, 45, 46]
METRIC = {"classification": "accuracy", "regression": "r2"}
REFERENCES = ["hist_gradient_boosting", "random_forest", "scaled_linear", "scaled_svm"]
WALL_FLOOR = 3.0
# Run as `python -c` in the split's clone: imports, reading the files and the four fits.
PROCESS_SCRIPT = (
    "import sys; from pathlib import Path; sys.path.insert(0, {here!r}); "
    "from defaults_floors import fit_references; fit_references(Path({repo!r}))"
)


def references(task: str) -> dict[str, BaseEstimator]:
    """The four scikit-learn references, default hyperparameters."""
    if task == "classification":
        return {
            "hist_gradient_boosting": HistGradientBoostingClassifier(random_state=0),
            "random_forest": RandomForestClassifier(random_state=0, n_jobs=1),
            "scaled_linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            "scaled_svm": make_pipeline(StandardScaler(), SVC()),
        }
    return {
        "hist_gradient_boosting": HistGradientBoostingRegressor(random_state=0),
        "random_forest": RandomForestRegressor(random_state=0, n_jobs=1),
        "scaled_linear": make_pipeline(StandardScaler(), Ridge()),
        "scaled_svm": make_pipeline(StandardScaler(), SVR()),
    }


def read_split(repo: Path) -> tuple[str, pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """The task, train + dev (features, target) and test (features, target) of a run."""
    schema = json.loads((repo / "data" / "prepared" / "schema.json").read_text())
    split = repo / "data" / "split"
    fit = pd.concat(
        [pd.read_parquet(split / "train.parquet"), pd.read_parquet(split / "dev.parquet")],
        ignore_index=True,
    )
    test = pd.read_parquet(split / "test.parquet")
    target = schema["target"]
    return (
        schema["task"],
        fit.drop(columns=target),
        fit[target],
        test.drop(columns=target),
        test[target],
    )


def fit_references(repo: Path) -> tuple[dict[str, float], float]:
    """Each reference's test score on a run's split, and the wall of the four fits and
    predictions (one thread)."""
    task, x_fit, y_fit, x_test, y_test = read_split(repo)
    score = accuracy_score if task == "classification" else r2_score
    predictions = {}
    with threadpool_limits(1):
        start = time.perf_counter()
        for name, model in references(task).items():
            predictions[name] = model.fit(x_fit, y_fit).predict(x_test)
        wall = time.perf_counter() - start
    return {name: float(score(y_test, pred)) for name, pred in predictions.items()}, wall


def time_references_process(repo: Path) -> float:
    """The wall of a fresh Python process that imports, reads the split and fits the four."""
    script = PROCESS_SCRIPT.format(here=str(HERE), repo=str(repo))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"references process failed: {tail(result)}")
    return wall


def tail(result: subprocess.CompletedProcess[str], lines: int = 10) -> str:
    """The last lines a failed command printed."""
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-lines:])


def clone(rev: str, dataset: str, seed: int, workdir: Path) -> Path:
    """A fresh clone at `rev` with only the source and the seed set."""
    repo = workdir / f"{dataset}-{seed}"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", rev], check=True)
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["prepare"]["source"] = f"sklearn:{dataset}"
    params["base"]["seed"] = seed
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def run_pipeline(repo: Path) -> dict[str, Any]:
    """One full `dvc repro`: its wall, the selected test score, the model chosen."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DVC_ROOT", None)  # the clone's, not that of a dvc run this was started from
    start = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"dvc repro failed in {repo}:\n{tail(result)}")
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    evaluate = json.loads((repo / "metrics" / "evaluate.json").read_text())
    train = json.loads((repo / "metrics" / "train.json").read_text())
    primary = evaluate["primary_metric"]
    return {
        "primary_metric": primary,
        "test": summary["selected"]["test"][primary],
        "strong_baseline_test": summary["strong_baseline"]["test"][primary],
        "selected": evaluate["selected"]["model"],
        "model_choice": train.get("model_choice", {}).get("chosen"),
        "n_test": evaluate["n_test"],
        "wall_s": wall,
    }


def run_seed(rev: str, dataset: str, seed: int, workdir: Path) -> dict[str, Any]:
    """The pipeline and the references on one seed's split: one per-seed row."""
    repo = clone(rev, dataset, seed, workdir)
    pipeline = run_pipeline(repo)
    task = json.loads((repo / "data" / "prepared" / "schema.json").read_text())["task"]
    if pipeline["primary_metric"] != METRIC[task]:
        raise RuntimeError(
            f"{dataset}: the pipeline's primary metric is {pipeline['primary_metric']}, "
            f"the references are scored on {METRIC[task]}"
        )
    scores, fit_wall = fit_references(repo)
    process_wall = time_references_process(repo)
    return {
        "dataset": dataset,
        "seed": seed,
        "task": task,
        "pipeline": pipeline,
        "references": scores,
        "references_fit_wall_s": fit_wall,
        "references_process_wall_s": process_wall,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(dataset: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over a dataset's seeds and its floors."""
    mean, std = mean_std([row["pipeline"]["test"] for row in rows])
    refs = {name: statistics.fmean(row["references"][name] for row in rows) for name in REFERENCES}
    best = max(refs, key=lambda name: refs[name])
    pipeline_wall = statistics.fmean(row["pipeline"]["wall_s"] for row in rows)
    fit_wall = statistics.fmean(row["references_fit_wall_s"] for row in rows)
    process_wall = statistics.fmean(row["references_process_wall_s"] for row in rows)
    ratio = pipeline_wall / fit_wall
    return {
        "dataset": dataset,
        "metric": METRIC[rows[0]["task"]],
        "seeds": [row["seed"] for row in rows],
        "test_mean": mean,
        "test_std": std,
        "chosen": sorted({str(row["pipeline"]["model_choice"]) for row in rows}),
        "references_mean": refs,
        "best_reference": best,
        "floor": FLOORS[dataset],
        "floor_met": mean >= FLOORS[dataset],
        "best_reference_met": mean >= refs[best],
        "pipeline_wall_s": pipeline_wall,
        "references_fit_wall_s": fit_wall,
        "references_process_wall_s": process_wall,
        "wall_ratio_fit": ratio,
        "wall_ratio_process": pipeline_wall / process_wall,
        "wall_met": ratio <= WALL_FLOOR,
    }


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def seed_line(row: dict[str, Any]) -> str:
    """One run, as it finishes: the pipeline beside the references, and the walls."""
    pipeline, refs = row["pipeline"], row["references"]
    return (
        f"{row['dataset']} seed {row['seed']}: pipeline {pipeline['test']:.4f} "
        f"({pipeline['selected']} {pipeline['model_choice']}, strong baseline "
        f"{pipeline['strong_baseline_test']:.4f}); "
        + ", ".join(f"{name} {refs[name]:.4f}" for name in REFERENCES)
        + f"; wall {pipeline['wall_s']:.1f} s vs {row['references_fit_wall_s']:.2f} s fit / "
        f"{row['references_process_wall_s']:.2f} s process"
    )


def misses(summary: dict[str, Any]) -> str:
    """'dataset (floor, wall)' naming the checks a dataset missed; '' if none."""
    checks = [check for check in ("floor", "best_reference", "wall") if not summary[f"{check}_met"]]
    return f"{summary['dataset']} ({', '.join(checks)})" if checks else ""


def table(summaries: list[dict[str, Any]]) -> list[str]:
    """The side-by-side table, one line per dataset (Markdown)."""
    lines = [
        "| dataset | metric | pipeline (mean ± std) | chosen | HGB | RF | scaled linear | "
        "scaled SVM | floor | vs floor | vs best reference | wall | wall ratio (fit / "
        "process) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        refs = s["references_mean"]
        lines.append(
            f"| {s['dataset']} | {s['metric']} | {s['test_mean']:.4f} ± {s['test_std']:.4f} | "
            f"{', '.join(s['chosen'])} | "
            + " | ".join(f"{refs[name]:.4f}" for name in REFERENCES)
            + f" | {s['floor']} | {met(s['floor_met'])} | "
            f"{met(s['best_reference_met'])} ({s['best_reference']}) | "
            f"{s['pipeline_wall_s']:.1f} s vs {s['references_fit_wall_s']:.2f} s / "
            f"{s['references_process_wall_s']:.2f} s | {s['wall_ratio_fit']:.0f}x "
            f"({met(s['wall_met'])}, floor {WALL_FLOOR:.0f}x) / "
            f"{s['wall_ratio_process']:.1f}x |"
        )
    return lines


def write_results(
    rows: list[dict[str, Any]], summaries: list[dict[str, Any]], rev: str, command: str
) -> None:
    RESULTS.mkdir(exist_ok=True)
    payload = {"rev": rev, "command": command, "runs": rows, "summary": summaries}
    (RESULTS / "defaults_floors.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Defaults floors (benchmarks/defaults_floors.py)",
        "",
        f"Command: `{command}`",
        f"Rev tested: `{rev}`",
        "",
        f"Means over base.seed {', '.join(map(str, summaries[0]['seeds']))} (the split seed). "
        "References: scikit-learn defaults fitted on train + dev of the same split, one thread.",
        "Wall ratio: mean `dvc repro` wall / the four references' fits and predictions (the 3x",
        "floor) / a whole Python process fitting them, start and imports included (no floor).",
        "",
        *table(summaries),
    ]
    (RESULTS / "defaults_floors.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS, choices=list(FLOORS))
    parser.add_argument("--seeds", nargs="+", type=int, default=DEFAULT_SEEDS)
    parser.add_argument("--rev", default="HEAD")
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/defaults_floors.py", *sys.argv[1:]])
    found = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{args.rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        print(f"error: --rev {args.rev}: not a commit of {REPO}", file=sys.stderr)
        return 2
    rev = found.stdout.strip()
    rows, summaries = [], []
    with tempfile.TemporaryDirectory(prefix="defaults-floors-") as tmp:
        for dataset in args.datasets:
            runs = []
            for seed in args.seeds:
                try:
                    runs.append(run_seed(rev, dataset, seed, Path(tmp)))
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                print(seed_line(runs[-1]), flush=True)
            rows.extend(runs)
            summaries.append(summarize(dataset, runs))
    print(f"{command} at {rev}")
    print("\n".join(table(summaries)))
    write_results(rows, summaries, rev, command)
    missed = [line for line in map(misses, summaries) if line]
    if missed:
        print(f"floors missed: {'; '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
