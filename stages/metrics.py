"""Scores and the fit diagnosis. Pure functions of arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

# The higher-is-better score each task is judged by (1.0 is perfect for both).
PRIMARY = {"classification": "accuracy", "regression": "r2"}
LOSS = {"classification": "log_loss", "regression": "mse"}

REMEDIES = {
    "overfitting": "more data, more regularization (dropout, L1/L2), earlier stopping, "
    "a smaller model",
    "underfitting": "a bigger model, less regularization, more epochs or a higher learning rate",
    "good fit": "none needed; more data or tuning may still help",
}


def scores(
    task: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None
) -> dict[str, float]:
    """Standard scores for the task, as plain floats."""
    from sklearn import metrics as skm

    if task == "classification":
        result = {
            "accuracy": skm.accuracy_score(y_true, y_pred),
            "macro_f1": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        }
        if proba is not None:
            clipped = np.clip(proba, 1e-15, 1.0)
            clipped = clipped / clipped.sum(axis=1, keepdims=True)
            result["log_loss"] = skm.log_loss(y_true, clipped, labels=np.arange(proba.shape[1]))
    else:
        mse = skm.mean_squared_error(y_true, y_pred)
        result = {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": skm.mean_absolute_error(y_true, y_pred),
            "r2": skm.r2_score(y_true, y_pred),
        }
    return {name: float(value) for name, value in result.items()}


def score_model(model: Any, task: str, data: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    features, targets = data
    return scores(task, targets, model.predict(features), model.predict_proba(features))


def history_row(
    task: str, epoch: int, train_scores: dict[str, float], dev_scores: dict[str, float]
) -> dict[str, float]:
    """An epoch row (loss and primary score on train and dev) from full score dicts."""
    loss, primary = LOSS[task], PRIMARY[task]
    return {
        "epoch": epoch,
        "train_loss": train_scores.get(loss, float("nan")),
        "train_score": train_scores[primary],
        "dev_loss": dev_scores.get(loss, float("nan")),
        "dev_score": dev_scores[primary],
    }


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std}


def summarize_seeds(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {mean, std}} across seeds."""
    return {name: mean_std([row[name] for row in per_seed]) for name in per_seed[0]}


def fit_verdict(
    train_score: float,
    dev_score: float,
    baseline_dev_score: float,
    overfit_gap: float,
    underfit_skill: float,
) -> dict[str, Any]:
    """Over-, under- or good fit from train vs dev vs baseline, with the remedy named.

    Skill is how far the model's train score goes from the baseline towards a perfect
    score (1.0): below `underfit_skill` the model has not learned the training data. A
    train-dev gap above `overfit_gap` means it learned the training data too well.
    """
    headroom = max(1.0 - baseline_dev_score, 1e-12)
    skill = (train_score - baseline_dev_score) / headroom
    gap = train_score - dev_score
    if skill < underfit_skill:
        verdict = "underfitting"
        reason = (
            f"train score {train_score:.4f} is only {skill:.0%} of the way from "
            f"baseline {baseline_dev_score:.4f} to perfect (threshold {underfit_skill:.0%})"
        )
    elif gap > overfit_gap:
        verdict = "overfitting"
        reason = (
            f"train {train_score:.4f} exceeds dev {dev_score:.4f} by {gap:.4f} "
            f"(threshold {overfit_gap})"
        )
    else:
        verdict = "good fit"
        reason = (
            f"train {train_score:.4f}, dev {dev_score:.4f} (gap {gap:.4f} <= "
            f"{overfit_gap}), baseline {baseline_dev_score:.4f}"
        )
    return {
        "verdict": verdict,
        "reason": reason,
        "remedy": REMEDIES[verdict],
        "train_dev_gap": gap,
        "skill": skill,
    }


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any]) -> list[dict]:
    """One row per test sample as DVC's confusion template expects: actual, predicted."""
    labels = [str(label) for label in classes]
    return [
        {"actual": labels[t], "predicted": labels[p]}
        for t, p in zip(y_true, y_pred, strict=True)
    ]
