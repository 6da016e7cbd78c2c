"""Curve tables behind the DVC plots: fixed columns, sane values, empty when n/a."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from reprotrain.evaluation import curves


def _multiclass(n_rows: int = 200, n_classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, n_rows)
    logits = rng.normal(size=(n_rows, n_classes)) + 1.5 * np.eye(n_classes)[y_true]
    return y_true, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_roc_table_is_the_macro_average_on_a_grid() -> None:
    y_true, proba = _multiclass()
    table = curves.roc_table(y_true, proba)
    assert list(table.columns) == curves.COLUMNS["roc"]
    assert len(table) == curves.GRID_POINTS
    assert table["fpr"].iloc[0] == 0.0 and table["fpr"].iloc[-1] == 1.0
    assert table["tpr"].is_monotonic_increasing and table["tpr"].iloc[-1] == pytest.approx(1.0)
    area = np.trapezoid(table["tpr"], table["fpr"])
    expected = skm.roc_auc_score(y_true, proba, multi_class="ovr")
    assert area == pytest.approx(expected, abs=0.02)  # grid interpolation


def test_binary_roc_table_uses_the_positive_class() -> None:
    y_true = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    table = curves.roc_table(y_true, proba)
    assert table["tpr"].iloc[1] == pytest.approx(1.0)  # perfectly separated
    assert list(curves.class_curves(y_true, proba)) == [1]


def test_precision_recall_table_is_interpolated_and_bounded() -> None:
    y_true, proba = _multiclass()
    table = curves.precision_recall_table(y_true, proba)
    assert list(table.columns) == curves.COLUMNS["precision_recall"]
    assert table["precision"].between(0, 1).all()
    assert table["precision"].is_monotonic_decreasing  # best precision at recall >= r
    assert table["chance"].iloc[0] == pytest.approx(1 / 3, abs=0.05)


def test_calibration_table_bins_confidence_against_accuracy() -> None:
    y_true = np.array([0, 1, 1, 0])
    proba = np.array([[0.95, 0.05], [0.15, 0.85], [0.85, 0.15], [0.45, 0.55]])
    table = curves.calibration_table(y_true, proba, bins=10)
    assert list(table.columns) == curves.COLUMNS["calibration"]
    assert table["count"].sum() == 4
    assert table["confidence"].tolist() == pytest.approx([0.05, 0.15, 0.55, 0.85])
    assert table["observed"].tolist() == [0.0, 1.0, 0.0, 1.0]  # share of positives per bin
    multi_y, multi_proba = _multiclass()
    multi = curves.calibration_table(multi_y, multi_proba, bins=5)
    assert multi["confidence"].between(1 / 3, 1).all()
    assert multi["count"].sum() == len(multi_y)


def test_residual_and_confusion_tables() -> None:
    residuals = curves.residual_table(np.array([1.0, 2.0]), np.array([1.5, 1.0]))
    assert residuals["residual"].tolist() == [0.5, -1.0]
    confusion = curves.confusion_table(np.array([0, 1]), np.array([1, 1]), ["a", "b"])
    assert confusion.to_dict("records") == [
        {"actual": "a", "predicted": "b"},
        {"actual": "b", "predicted": "b"},
    ]
    matrix = curves.confusion_matrix(np.array([0, 1]), np.array([1, 1]), 3)
    assert matrix.tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_tables_that_do_not_apply_are_empty_with_their_header() -> None:
    for name, columns in curves.COLUMNS.items():
        table = curves.empty(name)
        assert list(table.columns) == columns and table.empty
    assert curves.roc_table(np.array([1, 1]), np.array([[0.2, 0.8], [0.1, 0.9]])).empty


def test_expected_calibration_error_weights_each_bin_by_its_rows() -> None:
    table = pd.DataFrame(
        {"confidence": [0.5, 0.9], "observed": [0.7, 0.9], "perfect": [0.5, 0.9], "count": [1, 3]}
    )
    assert curves.expected_calibration_error(table) == pytest.approx(0.2 * 1 / 4)
    assert curves.expected_calibration_error(curves.empty("calibration")) is None
