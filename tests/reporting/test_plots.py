"""Every evaluation figure has labelled axes and saves to the same PNG bytes twice; what
each figure marks (best epoch, ECE and bin counts, pruned trials, the baseline) is where
it should be."""

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
    trials = [
        {"trial": 0, "state": "complete", "dev_score": 0.8, "last_epoch_dev_score": 0.8},
        {"trial": 1, "state": "pruned", "dev_score": None, "last_epoch_dev_score": 0.6},
        {"trial": 2, "state": "complete", "dev_score": 0.9, "last_epoch_dev_score": 0.9},
    ]
    tuning = [
        {"trial": 0, "dev_score": 0.8, "best_so_far": 0.8},
        {"trial": 2, "dev_score": 0.9, "best_so_far": 0.9},
    ]
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
        "history": plots.history_figure(history, best_epoch=4),
        "tuning": plots.tuning_history_figure(trials, tuning, "acc"),
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


def _legend(axis) -> list[str]:
    return axis.get_legend_handles_labels()[1]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "multiclass"])
def test_calibration_shows_observed_frequency_the_ece_and_bin_counts(binary: bool) -> None:
    table = pd.DataFrame(
        {"confidence": [0.2, 0.8], "observed": [0.1, 0.9], "perfect": [0.2, 0.8], "count": [5, 7]}
    )
    figure = plots.calibration_figure(table, "Calibration", binary=binary, ece=0.1)
    reliability, counts = figure.axes
    # the DVC plot's name for the axis; the second line says what is counted
    assert reliability.get_ylabel().startswith("observed frequency\n")
    assert ("positive" in reliability.get_ylabel() + counts.get_xlabel()) is binary
    assert "model (ECE 0.100)" in _legend(reliability)
    assert [text.get_text() for text in counts.texts] == ["5", "7"]  # a count on each bar
    assert counts.get_ylim()[1] > 7  # room above the tallest bar for its label
    plots.save(figure, Path("/dev/null"))


def test_loss_curves_mark_the_best_epoch_on_both_panels() -> None:
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "dev_loss": abs(e - 3) + 1,
            "train_score": 0.0,
            "dev_score": 0.0,
        }
        for e in range(1, 7)
    ]
    figure = plots.history_figure(history, best_epoch=3)
    for axis in figure.axes:
        marks = [line for line in axis.get_lines() if line.get_label() == "best epoch (3)"]
        assert len(marks) == 1
        assert list(marks[0].get_xdata()) == [3, 3]  # a vertical line at x = 3
    assert all("best epoch" not in " ".join(_legend(a)) for a in plots.history_figure(history).axes)
    plots.save(figure, Path("/dev/null"))


@pytest.mark.parametrize("kind", ["roc", "pr"])
def test_perfect_curves_stay_visible_off_the_axes_under_a_dashed_macro_line(kind: str) -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2])
    proba = np.eye(3)[y_true] * 0.8 + 0.1  # every class separated: AUC 1.0
    per_class = curves.class_curves(y_true, proba)
    if kind == "roc":
        figure = plots.roc_figure(per_class, curves.roc_table(y_true, proba), "abc", 1.0, "ROC")
    else:
        macro = curves.precision_recall_table(y_true, proba)
        figure = plots.precision_recall_figure(per_class, macro, "abc", "PR")
    axis = figure.axes[0]
    # the perfect curve runs along x = 0 / y = 1: the limits keep it off the spines
    assert axis.get_xlim()[0] < 0 and axis.get_xlim()[1] > 1
    assert axis.get_ylim()[0] < 0 and axis.get_ylim()[1] > 1
    lines = {line.get_label(): line for line in axis.get_lines()}
    macro_line = next(line for label, line in lines.items() if label.startswith("macro average"))
    classes = [line for label, line in lines.items() if label.startswith("class ")]
    assert len(classes) == 3
    assert macro_line.get_linestyle() != "-"  # dashed: the class curves show through
    assert all(macro_line.get_zorder() > line.get_zorder() for line in classes)
    plots.save(figure, Path("/dev/null"))


def test_learning_curve_names_a_far_baseline_instead_of_stretching_the_axis() -> None:
    curve = pd.DataFrame(
        {"n_train": [10, 50], "train_score": [1.0, 0.99], "dev_score": [0.93, 0.97]}
    )
    far = plots.learning_curve_figure(curve, "accuracy", 0.1).axes[0]
    assert far.get_ylim()[0] > 0.8  # the axis stays on the model curves
    assert "baseline (dev): 0.1, below the axis" in _legend(far)
    assert not any(line.get_label() == "baseline (dev)" for line in far.get_lines())

    near = plots.learning_curve_figure(curve, "accuracy", 0.92).axes[0]
    baseline = [line for line in near.get_lines() if line.get_label() == "baseline (dev)"]
    assert len(baseline) == 1 and list(baseline[0].get_ydata()) == [0.92, 0.92]


def test_tuning_history_draws_complete_points_best_line_and_pruned_apart() -> None:
    trials = [
        {"trial": 0, "state": "complete", "dev_score": 0.8, "last_epoch_dev_score": 0.8},
        {"trial": 1, "state": "pruned", "dev_score": float("nan"), "last_epoch_dev_score": 0.5},
        {"trial": 2, "state": "complete", "dev_score": 0.9, "last_epoch_dev_score": 0.9},
        {
            "trial": 3,
            "state": "failed",
            "dev_score": float("nan"),
            "last_epoch_dev_score": float("nan"),
        },
    ]
    history = [
        {"trial": 0, "dev_score": 0.8, "best_so_far": 0.8},
        {"trial": 2, "dev_score": 0.9, "best_so_far": 0.9},
    ]
    figure = plots.tuning_history_figure(trials, history, "accuracy")
    axis = figure.axes[0]
    assert sorted(_legend(axis)) == [
        "1 failed, no value: not drawn",
        "best so far",
        "complete trial",
        "pruned (dev when stopped)",
    ]
    complete, pruned = axis.collections  # the two scatters, in drawing order
    assert complete.get_offsets().tolist() == [[0, 0.8], [2, 0.9]]
    assert pruned.get_offsets().tolist() == [[1, 0.5]]  # where it stopped, not at zero
    best = next(line for line in axis.get_lines() if line.get_label() == "best so far")
    assert list(best.get_xdata()) == [0, 2, 3]  # on to the last trial
    assert list(best.get_ydata()) == [0.8, 0.9, 0.9]
    plots.save(figure, Path("/dev/null"))
