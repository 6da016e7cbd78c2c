"""metrics/report.md: tables with intervals, the verdicts and relative image links."""

from __future__ import annotations

import numpy as np
import repo_params
from schemas import make_schema

from reprotrain import metrics
from reprotrain.evaluation import summary as evaluation
from reprotrain.evaluation import verdicts
from reprotrain.reporting import report


def _summary(task: str) -> dict:
    rng = np.random.default_rng(0)
    params = repo_params.parse("evaluate", {"bootstrap": {"n_resamples": 200}})
    if task == "classification":
        y_true = rng.integers(0, 2, 60)
        proba = np.clip(np.eye(2)[y_true] * 0.7 + rng.uniform(0, 0.3, (60, 2)), 0, 1)
        proba /= proba.sum(axis=1, keepdims=True)
        good = (proba.argmax(1), proba)
        baseline = (np.zeros(60, int), np.tile([1.0, 0.0], (60, 1)))
        schema = make_schema(task, ["no", "yes"])
    else:
        y_true = rng.normal(size=60)
        good = (y_true + rng.normal(scale=0.3, size=60), None)
        baseline = (np.zeros(60), None)
        schema = make_schema(task)
    predictions = {
        "baseline": baseline,
        "strong_baseline": good,
        "seed-0": good,
        "seed-1": good,
        "tuned": good,
    }
    primary = metrics.PRIMARY[task]
    fit = verdicts.fit_verdict(0.99, 0.8, 0.5, 0.05, 0.8)
    summary = {
        "source": "sklearn:test",
        "task": task,
        "n_test": 60,
        "primary_metric": primary,
        "bootstrap": {"n_resamples": 200, "confidence": 0.95, "seed": 0},
        "test": evaluation.scores_on_test(schema, y_true, predictions, params, seed=0),
        "selected": {"model": "model", "reason": "dev wins", "path": "models/model/seed-0"},
        "fit": {"model": fit, "tuned": fit},
        "baseline_dev": 0.5,
        "learning_curve": verdicts.more_data_verdict([], 0.01),
    }
    if task == "classification":
        summary["per_class"] = evaluation.per_class(
            y_true, good[0], schema.classes, params.bootstrap, 0
        )
    return summary


def test_classification_report_has_every_table_and_the_plot_links() -> None:
    curve = [{"fraction": 0.5, "n_train": 30, "train_score": 1.0, "dev_score": 0.8}]
    text = report.render(_summary("classification"), curve, ["roc.png", "calibration.png"])
    assert text.startswith("# Evaluation report\n")
    assert "Selected model: **trained** — dev wins" in text
    assert "Fit (trained): **overfitting**" in text and "Remedy: more data" in text
    assert "| accuracy | 0." in text and "[0." in text  # value with its interval
    assert "| metric | baseline | strong baseline | trained" in text
    assert "| log_loss (lower is better) |" in text
    assert "trained (mean ± std, 2 seeds)" in text and "| metric | seed-0 | seed-1 |" in text
    assert "| yes | " in text  # per-class rows
    assert "| 50% | 30 | 1.0000 | 0.8000 |" in text
    assert "![ROC curves (selected model, test)](plots/roc.png)" in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_regression_report_shows_regression_scores_only() -> None:
    text = report.render(_summary("regression"), [], ["residuals.png"])
    for name in ("rmse (lower is better)", "mae (lower is better)", "| r2 |"):
        assert name in text
    assert "accuracy" not in text and "Per class" not in text and "Learning curve (" not in text
    assert "(plots/residuals.png)" in text


def test_selected_scores_follow_the_selection() -> None:
    summary = _summary("regression")
    assert evaluation.selected_scores(summary) is summary["test"]["model"]["seeds"]["seed-0"]
    summary["selected"]["model"] = "tuned"
    assert evaluation.selected_scores(summary) is summary["test"]["tuned"]
