"""Stage `evaluate`: the only stage that reads the test split.

Scores the baseline, the trained model (every seed, mean ± std) and the tuned model on
test, each with a bootstrap confidence interval; picks the model to report by its dev
score (never by test); writes the fit verdict, the plots (CSV for DVC, PNG for the
report and MLflow) and metrics/report.md; registers the winner in the MLflow Model
Registry and moves the `champion` alias only when it wins beyond the interval.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotrain import config, metrics
from reprotrain.config.errors import run_stage
from reprotrain.config.paths import (
    BASELINE_DIR,
    EVALUATE_METRICS,
    LEARNING_CURVE,
    MODEL_DIR,
    PLOTS_DIR,
    REPORT,
    SCHEMA,
    SPLIT_FILES,
    TRAIN_METRICS,
    TUNE_METRICS,
    TUNED_DIR,
)
from reprotrain.data import datasets, io
from reprotrain.evaluation import bootstrap, verdicts
from reprotrain.models.model import load_model
from reprotrain.reporting import report
from reprotrain.reporting.evaluation_plots import write_plots

log = logging.getLogger(__name__)

Prediction = tuple[np.ndarray, np.ndarray | None]  # labels or values, class probabilities


def seed_dirs(root: Path) -> list[Path]:
    return sorted(root.glob("seed-*"), key=lambda path: int(path.name.split("-")[1]))


def model_dirs() -> dict[str, Path]:
    """Every model to score: baseline, each trained seed, tuned."""
    seeds = {path.name: path for path in seed_dirs(MODEL_DIR)}
    return {"baseline": BASELINE_DIR, **seeds, "tuned": TUNED_DIR}


def select(train_summary: dict, tune_summary: dict, primary: str) -> tuple[str, str]:
    """The model to report: the higher mean dev score wins (ties go to the trained model)."""
    trained_dev = train_summary["model"]["dev"][primary]["mean"]
    tuned_dev = tune_summary["best_model"]["dev"][primary]
    if tuned_dev > trained_dev:
        return "tuned", f"dev {primary} {tuned_dev:.4f} (tuned) > {trained_dev:.4f} (trained)"
    return "model", f"dev {primary} {trained_dev:.4f} (trained) >= {tuned_dev:.4f} (tuned)"


def all_verdicts(train_summary: dict, tune_summary: dict, primary: str, params) -> dict:
    baseline_dev = train_summary["baseline"]["dev"][primary]
    model = train_summary["model"]
    tuned = tune_summary["best_model"]
    return {
        "model": verdicts.fit_verdict(
            model["train"][primary]["mean"],
            model["dev"][primary]["mean"],
            baseline_dev,
            params.overfit_gap,
            params.underfit_skill,
        ),
        "tuned": verdicts.fit_verdict(
            tuned["train"][primary],
            tuned["dev"][primary],
            baseline_dev,
            params.overfit_gap,
            params.underfit_skill,
        ),
    }


def predict(model: Any, frame: pd.DataFrame) -> Prediction:
    """A loaded model (with its own preprocessor) on a raw split frame."""
    features = model.preprocessor.transform(frame)
    return model.predict(features), model.predict_proba(features)


def scored(
    task: str, y_true: np.ndarray, prediction: Prediction, boot, seed: int
) -> dict[str, dict[str, float]]:
    """Every test score of one model with its bootstrap interval."""
    y_pred, proba = prediction
    points = metrics.evaluation_scores(task, y_true, y_pred, proba)
    intervals = bootstrap.intervals(
        task, y_true, y_pred, proba, boot.n_resamples, boot.confidence, seed
    )
    return {
        name: metrics.with_interval(value, intervals.get(name)) for name, value in points.items()
    }


def per_class(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list, boot, seed: int
) -> dict[str, dict[str, Any]]:
    """Precision and recall per class with intervals, and the class's test rows."""
    points = metrics.per_class_scores(y_true, y_pred, classes)
    intervals = bootstrap.per_class_intervals(
        y_true, y_pred, len(classes), boot.n_resamples, boot.confidence, seed
    )
    return {
        label: {
            "support": row["support"],
            **{
                name: metrics.with_interval(row[name], intervals[name][index])
                for name in ("precision", "recall")
            },
        }
        for index, (label, row) in enumerate(points.items())
    }


def summarize(
    schema: dict, y_true: np.ndarray, predictions: dict[str, Prediction], params, seed: int
) -> dict[str, dict]:
    """Test scores of every model: baseline, trained (per seed and mean ± std), tuned."""
    task, boot = schema["task"], params.bootstrap
    test = {name: scored(task, y_true, pred, boot, seed) for name, pred in predictions.items()}
    seeds = {name: scores for name, scores in test.items() if name.startswith("seed-")}
    values = [{k: v["value"] for k, v in scores.items()} for scores in seeds.values()]
    return {
        "baseline": test["baseline"],
        "model": {"seeds": seeds, "mean": metrics.summarize_seeds(values)},
        "tuned": test["tuned"],
    }


def read_curve(path: Path) -> list[dict[str, float]]:
    """The learning curve written by `train` (no rows when it is turned off)."""
    return pd.read_csv(path).to_dict("records")


def main() -> None:
    base, params = config.load("base", "evaluate")
    schema = io.read_json(SCHEMA)
    task, primary = schema["task"], metrics.PRIMARY[schema["task"]]
    test_frame = pd.read_parquet(SPLIT_FILES["test"])
    y_true = datasets.encode_target(test_frame, schema)
    train_summary, tune_summary = io.read_json(TRAIN_METRICS), io.read_json(TUNE_METRICS)
    curve = read_curve(LEARNING_CURVE)

    dirs = model_dirs()
    predictions = {name: predict(load_model(path), test_frame) for name, path in dirs.items()}
    selected, reason = select(train_summary, tune_summary, primary)
    winner = "tuned" if selected == "tuned" else next(n for n in dirs if n.startswith("seed-"))
    summary = {
        "source": schema["source"],
        "task": task,
        "n_test": len(test_frame),
        "primary_metric": primary,
        "bootstrap": {**params.bootstrap.model_dump(), "seed": base.seed},
        "test": summarize(schema, y_true, predictions, params, base.seed),
        "selected": {"model": selected, "reason": reason, "path": str(dirs[winner])},
        "fit": all_verdicts(train_summary, tune_summary, primary, params),
        "baseline_dev": train_summary["baseline"]["dev"][primary],
        "learning_curve": verdicts.more_data_verdict(curve, params.more_data_gain),
    }
    if task == "classification":
        y_pred = predictions[winner][0]
        summary["per_class"] = per_class(
            y_true, y_pred, schema["classes"], params.bootstrap, base.seed
        )

    with io.atomic_dir(PLOTS_DIR) as tmp:
        images = write_plots(tmp, schema, y_true, predictions[winner], summary, curve, params)
    io.write_json(EVALUATE_METRICS, summary)
    io.write_text(REPORT, report.render(summary, curve, images))
    verdict = summary["fit"][selected]
    print(
        f"fit verdict ({selected}): {verdict['verdict']}: {verdict['reason']}; "
        f"remedy: {verdict['remedy']}"
    )
    more_data = summary["learning_curve"]
    log.info("learning curve: %s (%s)", more_data["verdict"], more_data["reason"])
    log_to_mlflow(base, params, schema, summary, test_frame, dirs[winner])


def flat_scores(test: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names: test_tuned_accuracy, test_tuned_accuracy_ci_low, ..."""
    flat: dict[str, float] = {}
    for model in ("baseline", "tuned"):
        for metric, score in test[model].items():
            for key, value in score.items():
                suffix = "" if key == "value" else f"_{key}"
                flat[f"test_{model}_{metric}{suffix}"] = value
    for seed, scores in test["model"]["seeds"].items():
        for metric, score in scores.items():
            flat[f"test_{seed}_{metric}"] = score["value"]
    for metric, score in test["model"]["mean"].items():
        flat[f"test_model_{metric}_mean"] = score["mean"]
        flat[f"test_model_{metric}_std"] = score["std"]
    return flat


def log_to_mlflow(
    base, params, schema: dict, summary: dict, test_frame: pd.DataFrame, winner_dir: Path
) -> None:
    """The evaluate run: test input, scores, verdict tags, plots, report; then the registry."""
    from reprotrain import tracking
    from reprotrain.tracking import registry

    logged = {"base": {"seed": base.seed}, "evaluate": params.model_dump()}
    with tracking.stage_run("evaluate", logged) as run:
        run_id = run.info.run_id
        tracking.log_split_inputs(schema, {"test": SPLIT_FILES["test"]})
        tracking.log_metrics(run_id, flat_scores(summary["test"]))
        selected = summary["selected"]["model"]
        tracking.set_tags(
            run_id,
            {
                "fit_verdict": summary["fit"][selected]["verdict"],
                "fit_remedy": summary["fit"][selected]["remedy"],
                "learning_curve": summary["learning_curve"]["verdict"],
                "selected_model": selected,
            },
        )
        tracking.log_artifact(run_id, EVALUATE_METRICS)
        tracking.log_artifact(run_id, REPORT)
        for path in sorted(PLOTS_DIR.iterdir()):  # PNGs at the top, tables under plots/
            tracking.log_artifact(run_id, path, None if path.suffix == ".png" else "plots")
        if params.registry.enabled:
            registry.register_winner(
                run_id, params.registry, schema, summary, test_frame, winner_dir
            )


if __name__ == "__main__":
    run_stage(main)
