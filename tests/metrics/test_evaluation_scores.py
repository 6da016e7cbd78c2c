"""Evaluation scores, per-class scores, the more-data read and the champion decision."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn import metrics as skm

from reprotrain import metrics
from reprotrain.evaluation import verdicts


def test_evaluation_scores_add_balanced_accuracy_and_roc_auc() -> None:
    y_true = np.array([0, 0, 0, 1, 2, 2])
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.6, 0.3, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.2, 0.6],
            [0.5, 0.1, 0.4],
        ]
    )
    y_pred = proba.argmax(axis=1)
    result = metrics.evaluation_scores("classification", y_true, y_pred, proba)
    assert result["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, proba, multi_class="ovr"))
    assert {"accuracy", "macro_f1", "log_loss"} <= set(result)


def test_binary_roc_auc_scores_the_positive_class() -> None:
    y_true = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.35, 0.65], [0.2, 0.8]])
    assert metrics.roc_auc(y_true, proba) == pytest.approx(skm.roc_auc_score(y_true, proba[:, 1]))


def test_roc_auc_skips_classes_missing_from_the_split() -> None:
    y_true = np.array([0, 0, 1, 1])  # class 2 absent: scored over classes 0 and 1 only
    proba = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1]])
    assert metrics.roc_auc(y_true, proba) == pytest.approx(1.0)
    assert metrics.roc_auc(np.array([1, 1]), proba[:2]) is None


def test_regression_evaluation_scores_are_the_regression_scores() -> None:
    y_true, y_pred = np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.5])
    assert metrics.evaluation_scores("regression", y_true, y_pred) == metrics.scores(
        "regression", y_true, y_pred
    )


def test_per_class_scores_name_every_class() -> None:
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 1])
    result = metrics.per_class_scores(y_true, y_pred, ["cat", "dog", "eel"])
    assert result["cat"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    assert result["dog"]["precision"] == pytest.approx(2 / 3)
    assert result["eel"] == {"precision": 0.0, "recall": 0.0, "support": 0}


def test_with_interval() -> None:
    assert metrics.with_interval(0.9, (0.8, 0.95)) == {
        "value": 0.9,
        "ci_low": 0.8,
        "ci_high": 0.95,
    }
    assert metrics.with_interval(0.9, None) == {"value": 0.9}


def _curve(*dev_scores: float) -> list[dict[str, float]]:
    fractions = np.linspace(0.25, 1.0, len(dev_scores))
    return [
        {"fraction": f, "n_train": int(f * 100), "train_score": 1.0, "dev_score": s}
        for f, s in zip(fractions, dev_scores, strict=True)
    ]


@pytest.mark.parametrize(
    ("dev_scores", "verdict", "reason"),
    [
        pytest.param(
            (0.7, 0.8, 0.9), "more data likely helps", r"rose \+0\.1000 from 62%", id="up"
        ),
        pytest.param((0.7, 0.9, 0.905), "more data unlikely to help much", r"\+0\.0050", id="flat"),
        pytest.param((0.9,), "unknown", r"at least 2 fractions", id="one-point"),
    ],
)
def test_more_data_verdict(dev_scores, verdict: str, reason: str) -> None:
    result = verdicts.more_data_verdict(_curve(*dev_scores), min_gain=0.01)
    assert result["verdict"] == verdict
    assert re.search(reason, result["reason"])


def _against(difference: float, low: float, high: float, verdict: str) -> dict:
    return {"difference": difference, "ci_low": low, "ci_high": high, "verdict": verdict}


@pytest.mark.parametrize(
    ("against", "champion_version", "moves", "reason"),
    [
        pytest.param(None, None, True, "no champion yet; test accuracy 0.9500", id="first"),
        pytest.param(
            _against(0.05, 0.02, 0.08, "better"),
            "3",
            True,
            "vs champion v3 0.9000: difference +0.0500 [+0.0200, +0.0800] (paired bootstrap): "
            "beats the champion beyond the noise",
            id="better",
        ),
        pytest.param(
            _against(0.01, -0.01, 0.03, "within noise"),
            "3",
            False,
            "within noise, the champion stays",
            id="within-noise",
        ),
        pytest.param(
            _against(-0.04, -0.07, -0.01, "worse"),
            "3",
            False,
            "worse, the champion stays",
            id="worse",
        ),
        pytest.param(None, "3", False, "could not be scored", id="unscorable"),
    ],
)
def test_champion_decision(against, champion_version, moves: bool, reason: str) -> None:
    moved, why = verdicts.champion_decision("accuracy", 0.95, against, champion_version)
    assert moved is moves
    assert reason in why


def test_champion_decision_when_the_winner_is_a_registered_version() -> None:
    moved, why = verdicts.champion_decision("accuracy", 0.95, None, "3", "3")
    assert (moved, why) == (False, "v3 is the champion already (the same model files)")
    better = _against(0.05, 0.02, 0.08, "better")
    moved, why = verdicts.champion_decision("accuracy", 0.95, better, "3", "1")
    assert moved and "beats the champion beyond the noise" in why


def test_fit_verdict_carries_the_scores_it_judged() -> None:
    result = verdicts.fit_verdict(0.99, 0.9, 0.1, overfit_gap=0.05, underfit_skill=0.8)
    assert (result["train_score"], result["dev_score"]) == (0.99, 0.9)
