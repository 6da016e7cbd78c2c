"""Paired comparisons: the difference between two models on the same test resamples."""

from __future__ import annotations

import numpy as np
import pytest

from reprotrain.config import BootstrapParams
from reprotrain.metrics import bootstrap, paired
from reprotrain.reporting import report


def two_classifiers(n: int = 300):
    """Model a is right on 90% of the rows; b makes the same mistakes and 15 more (5%)."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, n)
    y_a = y_true.copy()
    y_a[:30] = (y_true[:30] + 1) % 3
    y_b = y_a.copy()
    y_b[30:45] = (y_true[30:45] + 2) % 3
    return y_true, (y_a, np.eye(3)[y_a] * 0.8 + 0.2 / 3), (y_b, np.eye(3)[y_b] * 0.8 + 0.2 / 3)


def test_paired_interval_sees_a_difference_that_separate_intervals_miss() -> None:
    y_true, a, b = two_classifiers()
    result = paired.differences("classification", y_true, a, b, 1000, 0.95, seed=0)
    accuracy = result["accuracy"]
    assert accuracy["difference"] == pytest.approx(0.05)
    assert 0 < accuracy["ci_low"] <= accuracy["difference"] <= accuracy["ci_high"]
    assert accuracy["verdict"] == "better"
    assert result["log_loss"]["verdict"] == "better"  # lower is better: a's is lower
    # Unpaired, the two intervals overlap: they could not tell the models apart.
    low_a, _ = bootstrap.intervals("classification", y_true, *a, 1000, 0.95, 0)["accuracy"]
    _, high_b = bootstrap.intervals("classification", y_true, *b, 1000, 0.95, 0)["accuracy"]
    assert low_a < high_b
    reverse = paired.differences("classification", y_true, b, a, 1000, 0.95, seed=0)
    assert reverse["accuracy"]["verdict"] == "worse"


def test_same_predictions_are_within_noise() -> None:
    y_true, a, _ = two_classifiers()
    result = paired.differences("classification", y_true, a, a, 200, 0.95, seed=0)
    assert result["accuracy"] == {
        "difference": 0.0,
        "ci_low": 0.0,
        "ci_high": 0.0,
        "verdict": "within noise",
    }


def test_regression_rmse_lower_is_better(regression_frame) -> None:
    y_true = regression_frame["y"].to_numpy()
    rng = np.random.default_rng(1)
    close, far = y_true + rng.normal(scale=0.1, size=80), y_true + rng.normal(scale=1.0, size=80)
    result = paired.differences("regression", y_true, (close, None), (far, None), 500, 0.95, 0)
    assert result["rmse"]["difference"] < 0 and result["rmse"]["verdict"] == "better"
    assert result["r2"]["verdict"] == "better"


def test_compare_the_selected_model_with_each_alternative() -> None:
    y_true, a, b = two_classifiers()
    baseline = (np.zeros_like(y_true), np.full((len(y_true), 3), 1 / 3))
    predictions = {"baseline": baseline, "strong_baseline": b, "seed-0": b, "seed-1": b, "tuned": a}
    params = BootstrapParams(n_resamples=300, confidence=0.95)
    result = paired.compare("classification", y_true, predictions, "tuned", params, seed=0)
    assert result["selected"] == "tuned" and result["trained_seed"] == "seed-0"
    assert set(result["against"]) == {"baseline", "strong_baseline", "model"}
    assert result["against"]["strong_baseline"]["accuracy"]["verdict"] == "better"
    assert result["against"]["model"]["accuracy"]["verdict"] == "better"
    assert result["against"]["baseline"]["accuracy"]["verdict"] == "better"
    section = "\n".join(report.paired_section(result, "accuracy"))
    assert "- tuned vs trained: **better** on test accuracy." in section
    assert "- tuned vs strong baseline: **better** on test accuracy." in section
    assert "| tuned − trained | accuracy | +0.0500 [+0.0" in section
    trained = paired.compare("classification", y_true, predictions, "seed-0", params, seed=0)
    assert trained["selected"] == "model" and set(trained["against"]) == {
        "baseline",
        "strong_baseline",
        "tuned",
    }
    assert trained["against"]["tuned"]["accuracy"]["verdict"] == "worse"
