"""Stage `evaluate`: the only stage that reads the test split.

Scores the baseline, the trained model (every seed, mean ± std) and the tuned model on
test; picks the model to report by its dev score (never by test); writes the confusion
matrix and the fit verdict.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from stages import config, datasets, io, metrics
from stages.errors import run_stage
from stages.models import load_model
from stages.paths import (
    BASELINE_DIR,
    CONFUSION,
    EVALUATE_METRICS,
    MODEL_DIR,
    SCHEMA,
    SPLIT_FILES,
    TRAIN_METRICS,
    TUNE_METRICS,
    TUNED_DIR,
)

log = logging.getLogger(__name__)


def seed_dirs(root: Path) -> list[Path]:
    return sorted(root.glob("seed-*"), key=lambda path: int(path.name.split("-")[1]))


def select(train_summary: dict, tune_summary: dict, primary: str) -> tuple[str, str]:
    """The model to report: the higher mean dev score wins (ties go to the trained model)."""
    trained_dev = train_summary["model"]["dev"][primary]["mean"]
    tuned_dev = tune_summary["best_model"]["dev"][primary]
    if tuned_dev > trained_dev:
        return "tuned", f"dev {primary} {tuned_dev:.4f} (tuned) > {trained_dev:.4f} (trained)"
    return "model", f"dev {primary} {trained_dev:.4f} (trained) >= {tuned_dev:.4f} (tuned)"


def verdicts(train_summary: dict, tune_summary: dict, primary: str, params) -> dict:
    baseline_dev = train_summary["baseline"]["dev"][primary]
    model = train_summary["model"]
    tuned = tune_summary["best_model"]
    return {
        "model": metrics.fit_verdict(
            model["train"][primary]["mean"],
            model["dev"][primary]["mean"],
            baseline_dev,
            params.overfit_gap,
            params.underfit_skill,
        ),
        "tuned": metrics.fit_verdict(
            tuned["train"][primary],
            tuned["dev"][primary],
            baseline_dev,
            params.overfit_gap,
            params.underfit_skill,
        ),
    }


def main() -> None:
    (params,) = config.load("evaluate")
    schema = io.read_json(SCHEMA)
    task, primary = schema["task"], metrics.PRIMARY[schema["task"]]
    test_frame = pd.read_parquet(SPLIT_FILES["test"])
    train_summary, tune_summary = io.read_json(TRAIN_METRICS), io.read_json(TUNE_METRICS)

    models = {"baseline": load_model(BASELINE_DIR), "tuned": load_model(TUNED_DIR)}
    seeds = {path.name: load_model(path) for path in seed_dirs(MODEL_DIR)}
    per_seed = {name: score(model, task, test_frame, schema) for name, model in seeds.items()}
    selected, reason = select(train_summary, tune_summary, primary)
    fit = verdicts(train_summary, tune_summary, primary, params)
    summary = {
        "primary_metric": primary,
        "test": {
            "baseline": score(models["baseline"], task, test_frame, schema),
            "model": {"seeds": per_seed, "mean": metrics.summarize_seeds(list(per_seed.values()))},
            "tuned": score(models["tuned"], task, test_frame, schema),
        },
        "selected": {"model": selected, "reason": reason},
        "fit": fit,
    }
    chosen = models["tuned"] if selected == "tuned" else next(iter(seeds.values()))

    confusion = None
    if task == "classification":
        actual = datasets.encode_target(test_frame, schema)
        predicted = chosen.predict(chosen.preprocessor.transform(test_frame))
        rows = metrics.confusion_rows(actual, predicted, schema["classes"])
        io.write_csv(CONFUSION, pd.DataFrame(rows))
        confusion = confusion_matrix(actual, predicted, len(schema["classes"]))
    io.write_json(EVALUATE_METRICS, summary)
    verdict = fit[selected]
    print(
        f"fit verdict ({selected}): {verdict['verdict']}: {verdict['reason']}; "
        f"remedy: {verdict['remedy']}"
    )

    from stages import plots, tracking

    with tracking.stage_run("evaluate", {"evaluate": params.model_dump()}) as run:
        tracking.log_metrics(run.info.run_id, tracking.flat_metrics(summary["test"], "test_"))
        tracking.set_tags(
            run.info.run_id, {"fit_verdict": verdict["verdict"], "selected_model": selected}
        )
        tracking.log_artifact(run.info.run_id, EVALUATE_METRICS)
        if confusion is not None:
            labels = [str(label) for label in schema["classes"]]
            figure = plots.confusion_figure(
                confusion, labels, f"Confusion matrix ({selected}, test)"
            )
            tracking.log_figure(run.info.run_id, figure, "confusion_matrix.png")


def score(model, task: str, frame: pd.DataFrame, schema: dict) -> dict[str, float]:
    """Scores of a loaded model (with its own preprocessor) on a raw split frame."""
    data = (model.preprocessor.transform(frame), datasets.encode_target(frame, schema))
    return metrics.score_model(model, task, data)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    from sklearn.metrics import confusion_matrix as sk_confusion

    return sk_confusion(y_true, y_pred, labels=np.arange(n_classes))


if __name__ == "__main__":
    run_stage(main)
