"""Weighted (bootstrap) scores agree with scikit-learn; intervals are seeded and sane."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from reprotrain import metrics
from reprotrain.metrics import bootstrap, resampling


def _classification(n_classes: int, n_rows: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, n_rows)
    logits = rng.normal(size=(n_rows, n_classes)) + 2.0 * np.eye(n_classes)[y_true]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba[:10] = np.round(proba[:10], 1) + 1e-3  # some tied scores
    proba /= proba.sum(axis=1, keepdims=True)
    return y_true, proba.argmax(axis=1), proba


def _one_resample(n_rows: int, seed: int = 3):
    rows = np.random.default_rng(seed).integers(0, n_rows, n_rows)
    return rows, np.bincount(rows, minlength=n_rows)[None, :].astype(np.float64)


@pytest.mark.parametrize("n_classes", [2, 4], ids=["binary", "multiclass"])
@pytest.mark.parametrize("weighting", ["ones", "resample"])
def test_weighted_classification_scores_match_sklearn(n_classes: int, weighting: str) -> None:
    y_true, y_pred, proba = _classification(n_classes)
    rows = np.arange(len(y_true))
    weights = np.ones((1, len(y_true)))
    if weighting == "resample":
        rows, weights = _one_resample(len(y_true))
    result = bootstrap.weighted_scores("classification", y_true, y_pred, proba, weights)
    expected = metrics.evaluation_scores("classification", y_true[rows], y_pred[rows], proba[rows])
    assert set(result) == set(expected)
    for name, value in expected.items():
        assert result[name][0] == pytest.approx(value, abs=1e-12), name


def test_weighted_auc_matches_sklearn_multiclass_ovr() -> None:
    y_true, _, proba = _classification(4)
    auc = bootstrap.weighted_roc_auc(y_true, proba, np.ones((1, len(y_true))))[0]
    assert auc == pytest.approx(skm.roc_auc_score(y_true, proba, multi_class="ovr"))


@pytest.mark.parametrize("weighting", ["ones", "resample"])
def test_weighted_regression_scores_match_sklearn(weighting: str) -> None:
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=150)
    y_pred = y_true + rng.normal(scale=0.5, size=150)
    rows, weights = np.arange(150), np.ones((1, 150))
    if weighting == "resample":
        rows, weights = _one_resample(150)
    result = bootstrap.weighted_scores("regression", y_true, y_pred, None, weights)
    assert result["rmse"][0] == pytest.approx(
        np.sqrt(skm.mean_squared_error(y_true[rows], y_pred[rows]))
    )
    assert result["mae"][0] == pytest.approx(skm.mean_absolute_error(y_true[rows], y_pred[rows]))
    assert result["r2"][0] == pytest.approx(skm.r2_score(y_true[rows], y_pred[rows]))


def test_per_class_scores_match_sklearn() -> None:
    y_true, y_pred, _ = _classification(3)
    result = bootstrap.per_class_scores(y_true, y_pred, 3, np.ones((1, len(y_true))))
    precision, recall, _, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], zero_division=0
    )
    np.testing.assert_allclose(result["precision"][0], precision)
    np.testing.assert_allclose(result["recall"][0], recall)


def test_resample_counts_draw_every_row_count_times() -> None:
    chunks = list(bootstrap.resample_counts(50, 30, seed=0))
    counts = np.concatenate(chunks)
    assert counts.shape == (30, 50)
    assert (counts.sum(axis=1) == 50).all()
    assert len({tuple(row) for row in counts}) == 30  # resamples differ


def test_intervals_are_seeded_and_independent_of_chunking(monkeypatch) -> None:
    y_true, y_pred, proba = _classification(3)
    first = bootstrap.intervals("classification", y_true, y_pred, proba, 300, 0.95, seed=7)
    again = bootstrap.intervals("classification", y_true, y_pred, proba, 300, 0.95, seed=7)
    other = bootstrap.intervals("classification", y_true, y_pred, proba, 300, 0.95, seed=8)
    assert first == again
    assert first != other
    monkeypatch.setattr(resampling, "CHUNK_CELLS", 1000)  # many small chunks, same draws
    chunked = bootstrap.intervals("classification", y_true, y_pred, proba, 300, 0.95, seed=7)
    for name, bounds in first.items():
        assert chunked[name] == pytest.approx(bounds), name


def test_interval_brackets_the_point_estimate_and_narrows_with_confidence() -> None:
    y_true, y_pred, proba = _classification(3)
    point = metrics.evaluation_scores("classification", y_true, y_pred, proba)
    wide = bootstrap.intervals("classification", y_true, y_pred, proba, 500, 0.99, seed=0)
    narrow = bootstrap.intervals("classification", y_true, y_pred, proba, 500, 0.8, seed=0)
    for name, value in point.items():
        low, high = wide[name]
        assert low <= value <= high, name
        assert wide[name][0] <= narrow[name][0] <= narrow[name][1] <= wide[name][1]


def test_a_constant_model_has_a_degenerate_but_defined_interval() -> None:
    y_true = np.array([0, 1] * 20)
    proba = np.tile([0.5, 0.5], (40, 1))
    result = bootstrap.intervals("classification", y_true, np.zeros(40, int), proba, 200, 0.95, 0)
    assert result["roc_auc"] == (0.5, 0.5)
    assert result["balanced_accuracy"] == (0.5, 0.5)


def test_percentile_interval_of_nothing_finite_is_none() -> None:
    assert bootstrap.percentile_interval(np.array([np.nan, np.nan]), 0.95) is None
