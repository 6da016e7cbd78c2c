"""Seeded percentile-bootstrap confidence intervals for test scores.

A resample of the test set is a vector of counts (how often each row was drawn), so
every score is computed as a weighted statistic over a (resamples, rows) count matrix:
vectorized numpy, no per-resample Python loop. The same seed gives the same resamples
for every model, so intervals of different models are paired. With weights of all ones
the functions here reproduce scikit-learn's scores (tested).
"""

from __future__ import annotations

import numpy as np

from reprotrain.metrics.resampling import resample_counts

__all__ = ["resample_counts"]  # also the resamples of the dev error analysis (metrics/)

EPSILON = 1e-15  # probability clip, as metrics.scores


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (zero_division=0)."""
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def class_counts(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Weighted support, predicted count and true positives per class: (resamples, classes)."""
    actual = np.eye(n_classes)[y_true]
    predicted = np.eye(n_classes)[y_pred]
    return {
        "support": weights @ actual,
        "predicted": weights @ predicted,
        "true_positive": weights @ (actual * predicted),
    }


def per_class_scores(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Precision and recall per class, (resamples, classes); 0 where undefined."""
    counts = class_counts(y_true, y_pred, n_classes, weights)
    return {
        "precision": _safe_divide(counts["true_positive"], counts["predicted"]),
        "recall": _safe_divide(counts["true_positive"], counts["support"]),
    }


def _nanmean_rows(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Row means over the columns where `present` holds (nan where none does)."""
    count = present.sum(axis=1)
    total = np.where(present, values, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.full(len(count), np.nan), where=count > 0)


def weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of `scores` for the boolean `positive`, one value per weight row (ties = 1/2)."""
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_positive = scores[order], positive[order]
    sorted_weights = weights[:, order]
    negative_weights = sorted_weights * ~sorted_positive
    positive_weights = sorted_weights * sorted_positive
    # Group equal scores: a positive beats every negative below its group, ties count half.
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_scores) != 0])
    group = np.cumsum(np.r_[True, np.diff(sorted_scores) != 0]) - 1
    cumulative = np.concatenate(
        [np.zeros((len(weights), 1)), np.cumsum(negative_weights, axis=1)], axis=1
    )
    ends = np.r_[starts[1:], len(scores)]
    below = cumulative[:, starts]  # negative weight strictly below each group
    tied = cumulative[:, ends] - below  # negative weight inside each group
    wins = (positive_weights * (below + 0.5 * tied)[:, group]).sum(axis=1)
    pairs = positive_weights.sum(axis=1) * negative_weights.sum(axis=1)
    return np.divide(wins, pairs, out=np.full(len(wins), np.nan), where=pairs > 0)


def weighted_roc_auc(y_true: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Binary AUC of the positive class, or the one-vs-rest macro mean over classes."""
    n_classes = proba.shape[1]
    classes = [1] if n_classes == 2 else range(n_classes)
    per_class = np.stack([weighted_auc(proba[:, c], y_true == c, weights) for c in classes], axis=1)
    return _nanmean_rows(per_class, ~np.isnan(per_class))


def weighted_scores(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    weights: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every evaluation score under each weight row: {name: (resamples,)}."""
    total = weights.sum(axis=1)
    if task != "classification":
        y_true, y_pred = y_true.astype(np.float64), y_pred.astype(np.float64)
        errors = y_pred - y_true
        mse = weights @ errors**2 / total
        spread = weights @ y_true**2 - (weights @ y_true) ** 2 / total
        r2 = 1.0 - np.divide(
            weights @ errors**2, spread, out=np.full(len(total), np.nan), where=spread > 0
        )
        return {"mse": mse, "rmse": np.sqrt(mse), "mae": weights @ np.abs(errors) / total, "r2": r2}
    n_classes = proba.shape[1] if proba is not None else int(max(y_true.max(), y_pred.max())) + 1
    counts = class_counts(y_true, y_pred, n_classes, weights)
    support, predicted, hits = counts["support"], counts["predicted"], counts["true_positive"]
    f1 = _safe_divide(2 * hits, support + predicted)
    result = {
        "accuracy": hits.sum(axis=1) / total,
        "balanced_accuracy": _nanmean_rows(_safe_divide(hits, support), support > 0),
        "macro_f1": _nanmean_rows(f1, (support + predicted) > 0),
    }
    if proba is not None:
        clipped = np.clip(proba, EPSILON, 1.0)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        sample_loss = -np.log(clipped[np.arange(len(y_true)), y_true])
        result["log_loss"] = weights @ sample_loss / total
        result["roc_auc"] = weighted_roc_auc(y_true, proba, weights)
    return result


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """The central `confidence` share of the finite resampled values (None if none is)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def intervals(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, tuple[float, float] | None]:
    """Percentile-bootstrap interval of every score: {name: (low, high)}."""
    chunks: dict[str, list[np.ndarray]] = {}
    for weights in resample_counts(len(y_true), n_resamples, seed):
        for name, values in weighted_scores(task, y_true, y_pred, proba, weights).items():
            chunks.setdefault(name, []).append(values)
    return {
        name: percentile_interval(np.concatenate(parts), confidence)
        for name, parts in chunks.items()
    }


def per_class_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, list[tuple[float, float] | None]]:
    """Percentile-bootstrap interval of precision and recall, per class index."""
    chunks: dict[str, list[np.ndarray]] = {}
    for weights in resample_counts(len(y_true), n_resamples, seed):
        for name, values in per_class_scores(y_true, y_pred, n_classes, weights).items():
            chunks.setdefault(name, []).append(values)
    result: dict[str, list[tuple[float, float] | None]] = {}
    for name, parts in chunks.items():
        stacked = np.concatenate(parts)
        result[name] = [percentile_interval(stacked[:, c], confidence) for c in range(n_classes)]
    return result
