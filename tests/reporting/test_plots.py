"""Every evaluation figure has labelled axes and saves to the same PNG bytes twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprotrain.evaluation import curves
from reprotrain.reporting import plots


def _classification():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 120)
    logits = rng.normal(size=(120, 3)) + 2 * np.eye(3)[y_true]
    return y_true, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _figures() -> dict[str, object]:
    y_true, proba = _classification()
    labels = ["a", "b", "c"]
    per_class = curves.class_curves(y_true, proba)
    residuals = curves.residual_table(np.linspace(0, 1, 30), np.linspace(0, 1, 30) ** 2)
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "dev_loss": 1.2 / e,
            "train_score": 1 - 1 / e,
            "dev_score": 0.9 - 1 / e,
        }
        for e in range(1, 6)
    ]
    trials = pd.DataFrame({"trial": [0, 1, 2], "dev_score": [0.8, 0.7, 0.9]})
    curve = pd.DataFrame(
        {"n_train": [10, 50], "train_score": [1.0, 0.95], "dev_score": [0.7, 0.85]}
    )
    matrix = curves.confusion_matrix(y_true, proba.argmax(1), 3)
    return {
        "confusion": plots.confusion_figure(matrix, labels, "Confusion"),
        "roc": plots.roc_figure(per_class, curves.roc_table(y_true, proba), labels, 0.9, "ROC"),
        "pr": plots.precision_recall_figure(
            per_class, curves.precision_recall_table(y_true, proba), labels, "PR"
        ),
        "calibration": plots.calibration_figure(
            curves.calibration_table(y_true, proba, 10), "Calibration", binary=False
        ),
        "predicted_vs_actual": plots.predicted_vs_actual_figure(residuals, "Predicted"),
        "residuals": plots.residuals_figure(residuals, "Residuals"),
        "history": plots.history_figure(history),
        "tuning": plots.tuning_history_figure(trials, curves.best_so_far([0.8, 0.7, 0.9]), "acc"),
        "learning_curve": plots.learning_curve_figure(curve, "accuracy", 0.1),
    }


def test_every_axis_is_labelled() -> None:
    for name, figure in _figures().items():
        for axis in figure.axes:
            if axis.get_label() == "<colorbar>":
                continue
            assert axis.get_ylabel(), f"{name}: an axis without a y label"
            shares_x = axis.get_xlabel() or any(
                other.get_xlabel() for other in figure.axes if other is not axis
            )
            assert shares_x, f"{name}: no x label"
        assert any(axis.get_title() for axis in figure.axes), f"{name}: no title"
        plots.save(figure, Path("/dev/null"))


def test_save_writes_the_same_png_bytes_without_a_version_stamp(tmp_path: Path) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for path in (first, second):
        y_true, proba = _classification()
        table = curves.roc_table(y_true, proba)
        plots.save(
            plots.roc_figure(curves.class_curves(y_true, proba), table, "abc", 0.9, "ROC"), path
        )
    data = first.read_bytes()
    assert data.startswith(b"\x89PNG") and data == second.read_bytes()
    assert b"Matplotlib" not in data


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "multiclass"])
def test_calibration_axis_names_what_is_measured(binary: bool) -> None:
    table = pd.DataFrame({"confidence": [0.2, 0.8], "observed": [0.1, 0.9], "count": [5, 5]})
    figure = plots.calibration_figure(table, "Calibration", binary=binary)
    labels = " ".join(axis.get_xlabel() + axis.get_ylabel() for axis in figure.axes)
    assert ("positive" in labels) is binary
    plots.save(figure, Path("/dev/null"))


def test_tuning_history_marks_trials_without_a_score() -> None:
    trials = pd.DataFrame(
        {
            "trial": [0, 1, 2],
            "state": ["complete", "pruned", "complete"],
            "dev_score": [0.8, None, 0.9],
        }
    )
    best = curves.best_so_far(trials["dev_score"].astype(float).tolist())
    figure = plots.tuning_history_figure(trials, best, "accuracy")
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["trial", "best so far", "pruned (no dev score)"]
    plots.save(figure, Path("/dev/null"))
