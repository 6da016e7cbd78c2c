"""Scores, the fit verdict and seed summaries."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from reprotrain import metrics
from reprotrain.evaluation import verdicts


def test_classification_scores() -> None:
    y_true = np.array([0, 1, 2, 2])
    y_pred = np.array([0, 1, 2, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.6, 0.3]])
    result = metrics.scores("classification", y_true, y_pred, proba)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    expected_loss = -np.mean(np.log([0.8, 0.8, 0.8, 0.3]))
    assert result["log_loss"] == pytest.approx(expected_loss)
    assert all(type(value) is float for value in result.values())


def test_classification_log_loss_with_a_zero_probability_is_finite() -> None:
    proba = np.array([[1.0, 0.0], [1.0, 0.0]])
    result = metrics.scores("classification", np.array([0, 1]), np.array([0, 0]), proba)
    assert math.isfinite(result["log_loss"])


def test_classification_without_proba_has_no_log_loss() -> None:
    result = metrics.scores("classification", np.array([0, 1]), np.array([0, 1]))
    assert result == {"accuracy": 1.0, "macro_f1": 1.0}


def test_regression_scores() -> None:
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([1.0, 2.0, 3.0, 6.0])
    result = metrics.scores("regression", y_true, y_pred)
    assert result["mse"] == pytest.approx(1.0)
    assert result["rmse"] == pytest.approx(1.0)
    assert result["mae"] == pytest.approx(0.5)
    assert result["r2"] == pytest.approx(1 - 4.0 / 5.0)


def test_history_row_picks_loss_and_primary_score() -> None:
    row = metrics.history_row(
        "regression", 3, {"mse": 2.0, "r2": 0.5}, {"mse": 3.0, "r2": 0.25, "mae": 1.0}
    )
    assert row == {
        "epoch": 3,
        "train_loss": 2.0,
        "train_score": 0.5,
        "dev_loss": 3.0,
        "dev_score": 0.25,
    }


def test_history_row_without_loss_is_nan() -> None:
    row = metrics.history_row("classification", 1, {"accuracy": 0.9}, {"accuracy": 0.8})
    assert math.isnan(row["train_loss"]) and row["dev_score"] == 0.8


@pytest.mark.parametrize(
    ("train", "dev", "baseline", "verdict", "reason"),
    [
        pytest.param(0.5, 0.5, 0.1, "underfitting", r"only 44% of the way", id="underfitting"),
        pytest.param(0.99, 0.85, 0.1, "overfitting", r"exceeds dev 0\.8500 by 0\.14", id="over"),
        pytest.param(0.98, 0.96, 0.1, "good fit", r"gap 0\.0200 <= 0\.05", id="good-fit"),
    ],
)
def test_fit_verdict(train: float, dev: float, baseline: float, verdict: str, reason: str) -> None:
    result = verdicts.fit_verdict(train, dev, baseline, overfit_gap=0.05, underfit_skill=0.8)
    assert result["verdict"] == verdict
    assert result["remedy"] == verdicts.REMEDIES[verdict]
    assert result["train_dev_gap"] == pytest.approx(train - dev)
    assert result["skill"] == pytest.approx((train - baseline) / (1 - baseline))
    assert re.search(reason, result["reason"])


def test_underfitting_takes_precedence_over_a_gap() -> None:
    result = verdicts.fit_verdict(0.5, 0.2, 0.1, overfit_gap=0.05, underfit_skill=0.8)
    assert result["verdict"] == "underfitting"


def test_fit_verdict_with_a_perfect_baseline_does_not_divide_by_zero() -> None:
    result = verdicts.fit_verdict(1.0, 1.0, 1.0, overfit_gap=0.05, underfit_skill=0.8)
    assert math.isfinite(result["skill"])


@pytest.mark.parametrize(
    ("values", "mean", "std"),
    [
        pytest.param([0.5], 0.5, 0.0, id="single"),
        pytest.param([1.0, 3.0], 2.0, math.sqrt(2.0), id="sample-std"),
        pytest.param([2.0, 2.0, 2.0], 2.0, 0.0, id="constant"),
    ],
)
def test_mean_std(values: list[float], mean: float, std: float) -> None:
    assert metrics.mean_std(values) == pytest.approx({"mean": mean, "std": std})


def test_summarize_seeds() -> None:
    summary = metrics.summarize_seeds([{"accuracy": 0.9, "f1": 0.8}, {"accuracy": 0.7, "f1": 0.8}])
    assert summary["accuracy"] == pytest.approx({"mean": 0.8, "std": math.sqrt(0.02)})
    assert summary["f1"] == pytest.approx({"mean": 0.8, "std": 0.0})


def test_confusion_rows_use_class_labels() -> None:
    rows = metrics.confusion_rows(np.array([0, 1]), np.array([1, 1]), ["cat", "dog"])
    assert rows == [{"actual": "cat", "predicted": "dog"}, {"actual": "dog", "predicted": "dog"}]


@pytest.mark.parametrize(
    ("rows", "classes"), [(2_000, 3), (500, 10), (50, 2)], ids=["3-class", "10-class", "binary"]
)
def test_log_loss_is_scikit_learns_to_the_last_bit(rows: int, classes: int) -> None:
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(classes)
    proba = rng.random((rows, classes)) ** 3
    proba[::5, 0], proba[::7, -1] = 0.0, 1.0  # clipped at both ends
    proba /= proba.sum(axis=1, keepdims=True)
    y_true = rng.integers(0, classes, rows)
    expected = log_loss(y_true, proba, labels=np.arange(classes))
    assert metrics.log_loss(y_true, proba) == expected
