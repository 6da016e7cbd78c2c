"""Curve tables behind the evaluation plots: pure functions of arrays -> DataFrames.

The tables have fixed columns whatever the data (a grid of x values, macro-averaged
over classes), so `dvc.yaml` can name them once and `dvc plots diff` can overlay runs.
Per-class curves for the PNG figures come from `class_curves`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GRID_POINTS = 101  # x values of the ROC and precision-recall tables: 0.00, 0.01, ..., 1.00

# Columns of each table: a task without a plot still gets the header (no rows), so every
# declared plot file exists and DVC renders the ones that apply.
COLUMNS = {
    "confusion": ["actual", "predicted"],
    "roc": ["fpr", "tpr", "chance"],
    "precision_recall": ["recall", "precision", "chance"],
    "calibration": ["confidence", "observed", "perfect", "count"],
    "residuals": ["actual", "predicted", "residual"],
}


def empty(name: str) -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in COLUMNS[name]})


def _scored_classes(y_true: np.ndarray, n_classes: int) -> list[int]:
    """Class indices that can get a one-vs-rest curve (present, not all of y_true)."""
    candidates = [1] if n_classes == 2 else range(n_classes)
    return [c for c in candidates if 0 < int(np.sum(y_true == c)) < len(y_true)]


def class_curves(y_true: np.ndarray, proba: np.ndarray) -> dict[int, dict[str, np.ndarray]]:
    """Per class (binary: the positive class): ROC and precision-recall points."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    curves = {}
    for c in _scored_classes(y_true, proba.shape[1]):
        fpr, tpr, _ = roc_curve(y_true == c, proba[:, c])
        precision, recall, _ = precision_recall_curve(y_true == c, proba[:, c])
        curves[c] = {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}
    return curves


def _interpolated_precision(recall: np.ndarray, precision: np.ndarray, grid: np.ndarray):
    """Best precision at recall >= each grid value (the usual PR interpolation)."""
    order = np.argsort(recall)
    recall, precision = recall[order], precision[order]
    best_from_here = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, grid, side="left")
    return np.where(index < len(recall), best_from_here[np.minimum(index, len(recall) - 1)], 0.0)


def roc_table(y_true: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """Macro-averaged one-vs-rest ROC curve (binary: the positive class) on an FPR grid."""
    curves = class_curves(y_true, proba)
    if not curves:
        return empty("roc")
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    tpr = np.mean([np.interp(grid, c["fpr"], c["tpr"]) for c in curves.values()], axis=0)
    return pd.DataFrame({"fpr": grid, "tpr": tpr, "chance": grid})


def precision_recall_table(y_true: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """Macro-averaged interpolated precision on a recall grid; chance = mean prevalence."""
    curves = class_curves(y_true, proba)
    if not curves:
        return empty("precision_recall")
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    precision = np.mean(
        [_interpolated_precision(c["recall"], c["precision"], grid) for c in curves.values()],
        axis=0,
    )
    prevalence = float(np.mean([np.mean(y_true == c) for c in curves]))
    return pd.DataFrame({"recall": grid, "precision": precision, "chance": prevalence})


def calibration_table(y_true: np.ndarray, proba: np.ndarray, bins: int) -> pd.DataFrame:
    """Reliability diagram: mean confidence vs observed frequency per equal-width bin.

    Binary: the predicted probability of the positive class vs the share of positives.
    Multiclass: the top predicted probability vs how often that prediction is right.
    Empty bins are left out.
    """
    if proba.shape[1] == 2:
        confidence, hit = proba[:, 1], (y_true == 1).astype(np.float64)
    else:
        confidence = proba.max(axis=1)
        hit = (proba.argmax(axis=1) == y_true).astype(np.float64)
    index = np.clip((confidence * bins).astype(int), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        if members.any():
            mean_confidence = float(confidence[members].mean())
            rows.append(
                {
                    "confidence": mean_confidence,
                    "observed": float(hit[members].mean()),
                    "perfect": mean_confidence,
                    "count": int(members.sum()),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS["calibration"])


def expected_calibration_error(table: pd.DataFrame) -> float | None:
    """ECE of a `calibration_table`: the gap |observed - confidence| of each bin, weighted
    by its share of rows (None when the table has no rows)."""
    total = table["count"].sum()
    if not total:
        return None
    gaps = (table["observed"] - table["confidence"]).abs()
    return float((gaps * table["count"]).sum() / total)


def residual_table(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Per test row: actual, predicted and residual (predicted - actual)."""
    actual, predicted = y_true.astype(np.float64), y_pred.astype(np.float64)
    return pd.DataFrame({"actual": actual, "predicted": predicted, "residual": predicted - actual})


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray, classes: list) -> pd.DataFrame:
    """One row per test sample as DVC's confusion template expects."""
    labels = [str(label) for label in classes]
    return pd.DataFrame(
        {"actual": [labels[t] for t in y_true], "predicted": [labels[p] for p in y_pred]}
    )


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    from sklearn.metrics import confusion_matrix as sk_confusion

    return sk_confusion(y_true, y_pred, labels=np.arange(n_classes))
