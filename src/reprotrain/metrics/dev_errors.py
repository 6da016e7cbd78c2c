"""Error analysis on dev: where a model fails, for the user to look at next.

Pure functions of the dev rows, their targets and a model's predictions (train and tune
call them on dev; nothing here sees the test set):

- the mistakes: the most confident wrong predictions (classification) or the largest
  residuals (regression), with true and predicted values and probabilities, and the
  feature values (the pixels, for images, so the report can show them);
- the confusion pairs that cost most: (true, predicted) counts, ranked;
- per-slice scores with a bootstrap interval: each true class, each value of a categorical
  feature, quantile bins of each numeric feature (tabular data), flagged when the whole
  interval sits below the overall score (accuracy; regression: above the overall mean
  absolute error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotrain.config.paths import CV_PREDICTIONS
from reprotrain.data import io
from reprotrain.data.schema import Schema
from reprotrain.metrics.resampling import resample_counts

Prediction = tuple[np.ndarray, np.ndarray | None]  # labels or values, class probabilities
N_MISTAKES = 16  # rows in mistakes.csv (a 4x4 grid of thumbnails for images)
N_PAIRS = 10  # confusion pairs listed
N_BINS = 4  # quantile bins per numeric feature
MIN_SLICE_ROWS = 10  # smaller slices are left out (their intervals say little)
MAX_VALUES = 20  # most frequent values of a categorical feature sliced
N_RESAMPLES = 1000
CONFIDENCE = 0.95
CONFIDENT = 0.9  # a mistake made with at least this probability counts as confident
FILES = ("mistakes.csv", "confusion_pairs.csv", "slices.csv", "summary.json")


def _label(schema: Schema, index: int) -> str:
    return str(schema.labels[index])


def mistakes(
    schema: Schema,
    frame: pd.DataFrame,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
) -> pd.DataFrame:
    """The N_MISTAKES worst dev rows: `dev_row` (position in dev.parquet), true and
    predicted values, probabilities or residual, then the row's features."""
    if schema.is_classification:
        assert proba is not None
        wrong = np.flatnonzero(y_pred != y_true)
        confidence = proba[wrong, y_pred[wrong]]
        rows = wrong[np.argsort(-confidence, kind="stable")][:N_MISTAKES]
        table = pd.DataFrame(
            {
                "dev_row": rows,
                "true": [_label(schema, index) for index in y_true[rows]],
                "predicted": [_label(schema, index) for index in y_pred[rows]],
                "p_predicted": proba[rows, y_pred[rows]].round(4),
                "p_true": proba[rows, y_true[rows]].round(4),
            }
        )
    else:
        residual = y_pred.astype(np.float64) - y_true.astype(np.float64)
        rows = np.argsort(-np.abs(residual), kind="stable")[:N_MISTAKES]
        table = pd.DataFrame(
            {
                "dev_row": rows,
                "true": y_true[rows].astype(np.float64),
                "predicted": y_pred[rows].astype(np.float64),
                "residual": residual[rows],
            }
        )
    features = frame.iloc[rows][schema.feature_names].reset_index(drop=True)
    return pd.concat([table, features], axis=1)


def confusion_pairs(schema: Schema, y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """(true, predicted) pairs of the mistakes, most frequent first, with their share of
    the true class's dev rows and of all dev rows."""
    columns = ["true", "predicted", "rows", "share_of_class", "share_of_dev"]
    if not schema.is_classification:
        return pd.DataFrame(columns=columns)
    wrong = y_pred != y_true
    pairs = pd.DataFrame({"t": y_true[wrong], "p": y_pred[wrong]}).value_counts()
    support = np.bincount(y_true, minlength=schema.n_classes)
    ranked = pairs.head(N_PAIRS)
    return pd.DataFrame(
        {
            "true": [_label(schema, t) for t, _ in ranked.index],
            "predicted": [_label(schema, p) for _, p in ranked.index],
            "rows": ranked.to_numpy(),
            "share_of_class": [round(n / support[t], 4) for (t, _), n in ranked.items()],
            "share_of_dev": (ranked.to_numpy() / len(y_true)).round(4),
        },
        columns=columns,
    )


def slice_masks(schema: Schema, frame: pd.DataFrame, y_true: np.ndarray) -> dict[str, np.ndarray]:
    """'feature = value' / 'feature in [low, high]' -> the dev rows of that slice."""
    masks: dict[str, np.ndarray] = {}
    if schema.is_classification:
        for index, label in enumerate(schema.labels):
            masks[f"{schema.target} = {label}"] = y_true == index
    if schema.image_shape is not None:  # pixels are not slices a user would act on
        return {name: mask for name, mask in masks.items() if mask.sum() >= MIN_SLICE_ROWS}
    for feature in schema.features:
        series = frame[feature.name]
        if feature.kind in ("category", "bool"):
            for value in series.value_counts().index[:MAX_VALUES]:
                masks[f"{feature.name} = {value}"] = (series == value).to_numpy()
        elif feature.kind == "numeric" and series.nunique() > N_BINS:
            bins = pd.qcut(series, N_BINS, duplicates="drop")
            for interval in bins.cat.categories:
                label = f"{feature.name} in ({interval.left:.4g}, {interval.right:.4g}]"
                masks[label] = (bins == interval).to_numpy()
    return {name: mask for name, mask in masks.items() if mask.sum() >= MIN_SLICE_ROWS}


def slices(
    schema: Schema,
    frame: pd.DataFrame,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    seed: int,
) -> tuple[pd.DataFrame, float, str]:
    """Each slice's score and bootstrap interval; `below` marks the slices whose interval
    lies entirely on the wrong side of the overall score. Also the overall score and the
    metric's name (accuracy, or mae for regression, lower is better)."""
    if schema.is_classification:
        quality, metric = (y_pred == y_true).astype(np.float64), "accuracy"
    else:
        quality = np.abs(y_pred.astype(np.float64) - y_true.astype(np.float64))
        metric = "mae"
    overall = float(quality.mean())
    tail = (1.0 - CONFIDENCE) / 2 * 100
    rows = []
    for name, mask in slice_masks(schema, frame, y_true).items():
        values = quality[mask]
        resampled = np.concatenate(
            [w @ values / len(values) for w in resample_counts(len(values), N_RESAMPLES, seed)]
        )
        low, high = np.percentile(resampled, [tail, 100 - tail])
        below = high < overall if metric == "accuracy" else low > overall
        rows.append([name, int(mask.sum()), values.mean(), low, high, bool(below)])
    table = pd.DataFrame(rows, columns=["slice", "rows", metric, "ci_low", "ci_high", "below"])
    table[[metric, "ci_low", "ci_high"]] = table[[metric, "ci_low", "ci_high"]].round(4)
    worst_first = table.sort_values(metric, ascending=metric == "accuracy", kind="stable")
    return worst_first.reset_index(drop=True), overall, metric


def analyse(
    schema: Schema,
    frame: pd.DataFrame,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    seed: int,
) -> dict[str, Any]:
    """Every table of the analysis and its summary: {file name: frame or mapping}."""
    slice_table, overall, metric = slices(schema, frame, y_true, y_pred, seed)
    worst = mistakes(schema, frame, y_true, y_pred, proba)
    summary: dict[str, Any] = {
        "task": schema.task,
        "n_dev": len(y_true),
        "metric": metric,
        "overall": round(overall, 4),
        "n_slices": len(slice_table),
        "slices_below": int(slice_table["below"].sum()),
        "confidence": CONFIDENCE,
        "n_resamples": N_RESAMPLES,
        "seed": seed,
        "image_shape": schema.image_shape,
    }
    if schema.is_classification:
        summary["n_mistakes"] = int((y_pred != y_true).sum())
        assert proba is not None
        wrong = y_pred != y_true
        summary["confident_mistakes"] = int((proba[wrong, y_pred[wrong]] >= CONFIDENT).sum())
    return {
        "mistakes.csv": worst,
        "confusion_pairs.csv": confusion_pairs(schema, y_true, y_pred),
        "slices.csv": slice_table,
        "summary.json": summary,
    }


def of_model(
    model: Any, schema: Schema, frame: pd.DataFrame, dev: tuple[np.ndarray, np.ndarray], seed: int
) -> dict[str, Any]:
    """`analyse` for a fitted model (`predict`, `predict_proba`) on the dev matrix `dev`
    (features, encoded targets) and the dev rows `frame` it was read from."""
    features, y_true = dev
    return analyse(
        schema, frame, y_true, model.predict(features), model.predict_proba(features), seed
    )


def write(directory: Path, analysis: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in analysis.items():
        if name.endswith(".json"):
            io.write_json(directory / name, content)
        else:
            io.write_csv(directory / name, content)


def read_cv_predictions(directory: Path) -> tuple[np.ndarray, Prediction] | None:
    """The out-of-fold predictions written beside the analysis under cross-validation:
    (true targets, (labels or values, probabilities)); None without cross-validation."""
    path = directory / CV_PREDICTIONS
    if not path.exists():
        return None
    table = pd.read_csv(path)
    proba_columns = [name for name in table.columns if name.startswith("proba_")]
    proba = table[proba_columns].to_numpy() if proba_columns else None
    return table["actual"].to_numpy(), (table["predicted"].to_numpy(), proba)


def read(directory: Path) -> dict[str, Any]:
    """The tables `write` wrote; class labels read back as text."""
    summary = io.read_json(directory / "summary.json")
    labels = {"true": str, "predicted": str} if summary["task"] == "classification" else {}
    tables = {
        name: pd.read_csv(directory / name, dtype={**labels, "slice": str})
        for name in FILES
        if name.endswith(".csv")
    }
    return {**tables, "summary.json": summary}
