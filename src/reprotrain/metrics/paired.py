"""Paired comparisons on test: is the selected model better than each alternative beyond
the noise of the test sample?

Every model is scored on the same bootstrap resamples of the test rows (the seed of the
intervals, so the same draws), and each resample gives the difference selected −
alternative. The percentile interval of those differences is paired: the rows a resample
over-weights help or hurt both models, so the interval is much narrower than two
overlapping intervals suggest. "Better" means the interval of the difference lies wholly
on the better side of 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reprotrain.metrics.bootstrap import percentile_interval, resample_counts, weighted_scores

LOWER_IS_BETTER = {"log_loss", "rmse", "mae", "mse"}


def differences(
    task: str,
    y_true: np.ndarray,
    selected: tuple[np.ndarray, np.ndarray | None],
    other: tuple[np.ndarray, np.ndarray | None],
    n_resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Per score: the difference selected − other on the full test set, its paired
    bootstrap interval and the verdict (better, worse, or within noise)."""
    full = np.ones((1, len(y_true)))
    point_a = weighted_scores(task, y_true, *selected, full)
    point_b = weighted_scores(task, y_true, *other, full)
    chunks: dict[str, list[np.ndarray]] = {}
    for weights in resample_counts(len(y_true), n_resamples, seed):
        scores_a = weighted_scores(task, y_true, *selected, weights)
        scores_b = weighted_scores(task, y_true, *other, weights)
        for name in scores_a.keys() & scores_b.keys():
            chunks.setdefault(name, []).append(scores_a[name] - scores_b[name])
    result = {}
    for name in sorted(chunks):
        interval = percentile_interval(np.concatenate(chunks[name]), confidence)
        difference = float(point_a[name][0] - point_b[name][0])
        if not np.isfinite(difference) or interval is None:
            continue
        low, high = interval
        sign = -1.0 if name in LOWER_IS_BETTER else 1.0
        if sign * low > 0 and sign * high > 0:
            verdict = "better"
        elif sign * low < 0 and sign * high < 0:
            verdict = "worse"
        else:
            verdict = "within noise"
        result[name] = {
            "difference": difference,
            "ci_low": low,
            "ci_high": high,
            "verdict": verdict,
        }
    return result


def compare(
    task: str,
    y_true: np.ndarray,
    predictions: dict[str, tuple[np.ndarray, np.ndarray | None]],
    winner: str,
    bootstrap: Any,
    seed: int,
) -> dict[str, Any]:
    """The selected model (`winner`: 'tuned' or a trained seed) against the two baselines
    and the other of trained (its first seed) / tuned, on the same resamples."""
    first_seed = next(name for name in predictions if name.startswith("seed-"))
    names = {
        "baseline": "baseline",
        "strong_baseline": "strong_baseline",
        "model": first_seed,
        "tuned": "tuned",
    }
    selected = "tuned" if winner == "tuned" else "model"
    against = {
        title: differences(
            task,
            y_true,
            predictions[winner],
            predictions[key],
            bootstrap.n_resamples,
            bootstrap.confidence,
            seed,
        )
        for title, key in names.items()
        if title != selected
    }
    return {
        "selected": selected,
        "trained_seed": first_seed,
        "confidence": bootstrap.confidence,
        "n_resamples": bootstrap.n_resamples,
        "against": against,
    }
