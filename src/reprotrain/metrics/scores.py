"""Scores and the fit diagnosis. Pure functions of arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

# The higher-is-better score each task is judged by (1.0 is perfect for both).
PRIMARY = {"classification": "accuracy", "regression": "r2"}
LOSS = {"classification": "log_loss", "regression": "mse"}


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
            clipped /= clipped.sum(axis=1, keepdims=True)
            result["log_loss"] = log_loss(y_true, clipped)
    else:
        mse = skm.mean_squared_error(y_true, y_pred)
        result = {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": skm.mean_absolute_error(y_true, y_pred),
            "r2": skm.r2_score(y_true, y_pred),
        }
    return {name: float(value) for name, value in result.items()}


def log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """scikit-learn's `log_loss` for class indices `y_true` (0 .. n_classes - 1), to the last
    bit, but from the true class's column alone: scikit-learn builds several one-hot and
    float copies of the (rows, classes) matrix, hundreds of MB on a large split."""
    eps = np.finfo(proba.dtype).eps
    true_class = np.clip(proba[np.arange(len(y_true)), y_true], eps, 1 - eps)
    return float(np.mean(-np.log(true_class)))


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any]) -> dict:
    """Recall of each class label: shows what imbalance handling does to rare classes."""
    from sklearn.metrics import recall_score

    values = recall_score(
        y_true, y_pred, labels=np.arange(len(classes)), average=None, zero_division=0
    )
    return {str(label): float(value) for label, value in zip(classes, values, strict=True)}


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


def confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any]) -> list[dict]:
    """One row per test sample as DVC's confusion template expects: actual, predicted."""
    labels = [str(label) for label in classes]
    return [
        {"actual": labels[t], "predicted": labels[p]} for t, p in zip(y_true, y_pred, strict=True)
    ]


# --- evaluation on test -----------------------------------------------------------------


def roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float | None:
    """Binary ROC-AUC of the positive class, or the one-vs-rest macro mean over classes.

    Classes absent from `y_true` (or making up all of it) are skipped, so a small split
    still gets a score; None when no class can be scored.
    """
    from sklearn.metrics import roc_auc_score

    classes = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    values = [
        roc_auc_score(y_true == c, proba[:, c])
        for c in classes
        if 0 < int(np.sum(y_true == c)) < len(y_true)
    ]
    return float(np.mean(values)) if values else None


def evaluation_scores(
    task: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None
) -> dict[str, float]:
    """Test scores: `scores` plus balanced accuracy and ROC-AUC for classification."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    result = scores(task, y_true, y_pred, proba)
    if task != "classification":
        return result
    with warnings.catch_warnings():  # a class predicted but absent from y_true
        warnings.simplefilter("ignore", UserWarning)
        result["balanced_accuracy"] = float(balanced_accuracy_score(y_true, y_pred))
    auc = roc_auc(y_true, proba) if proba is not None else None
    if auc is not None:
        result["roc_auc"] = auc
    return result


def per_class_scores(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any]
) -> dict[str, dict[str, float]]:
    """{label: {precision, recall, support}} for every class (0 where undefined)."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, _, support = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(len(classes)), zero_division=0
    )
    return {
        str(label): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(classes)
    }


def with_interval(value: float, interval: tuple[float, float] | None) -> dict[str, float]:
    """A score as {value, ci_low, ci_high} (no bounds when the interval is undefined)."""
    if interval is None:
        return {"value": float(value)}
    return {"value": float(value), "ci_low": interval[0], "ci_high": interval[1]}
