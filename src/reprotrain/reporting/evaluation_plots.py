"""The files under metrics/plots/: CSV tables for DVC plots and PNG images.

Every table in `curves.COLUMNS` is written (with no rows when it does not apply to the
task) so the files `dvc.yaml` names always exist; PNGs are drawn only for what applies.
The loss curves, tuning history and learning curve are redrawn here from the CSVs that
`train` and `tune` wrote, so the report has every picture in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotrain.config.paths import (
    PLOT_TABLES,
    TRAIN_HISTORY,
    TRAIN_METRICS,
    TUNE_HISTORY,
    TUNE_METRICS,
    TUNE_TRIALS,
)
from reprotrain.data import io
from reprotrain.data.schema import Schema
from reprotrain.evaluation import curves
from reprotrain.evaluation.summary import selected_scores
from reprotrain.reporting import plots

TITLE_MODEL = {"tuned": "tuned", "model": "trained"}


def classification_tables(
    schema: Schema, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, bins: int
) -> dict[str, pd.DataFrame]:
    return {
        "confusion": curves.confusion_table(y_true, y_pred, schema.labels),
        "roc": curves.roc_table(y_true, proba),
        "precision_recall": curves.precision_recall_table(y_true, proba),
        "calibration": curves.calibration_table(y_true, proba, bins),
    }


def classification_figures(
    schema: Schema,
    y_true: np.ndarray,
    prediction: tuple,
    tables: dict[str, pd.DataFrame],
    summary: dict[str, Any],
) -> dict[str, Any]:
    y_pred, proba = prediction
    labels = [str(label) for label in schema.labels]
    model = TITLE_MODEL[summary["selected"]["model"]]
    per_class = curves.class_curves(y_true, proba)
    auc = selected_scores(summary).get("roc_auc", {}).get("value")
    matrix = curves.confusion_matrix(y_true, y_pred, len(labels))
    figures = {
        "confusion_matrix.png": plots.confusion_figure(
            matrix, labels, f"Confusion matrix ({model}, test)"
        )
    }
    if len(tables["roc"]):
        figures["roc.png"] = plots.roc_figure(
            per_class, tables["roc"], labels, auc, f"ROC, one-vs-rest ({model}, test)"
        )
        figures["precision_recall.png"] = plots.precision_recall_figure(
            per_class, tables["precision_recall"], labels, f"Precision-recall ({model}, test)"
        )
    figures["calibration.png"] = plots.calibration_figure(
        tables["calibration"],
        f"Calibration ({model}, test)",
        binary=proba.shape[1] == 2,
        ece=curves.expected_calibration_error(tables["calibration"]),
    )
    return figures


def regression_figures(table: pd.DataFrame, summary: dict[str, Any]) -> dict[str, Any]:
    model = TITLE_MODEL[summary["selected"]["model"]]
    return {
        "predicted_vs_actual.png": plots.predicted_vs_actual_figure(
            table, f"Predicted vs actual ({model}, test)"
        ),
        "residuals.png": plots.residuals_figure(table, f"Residuals ({model}, test)"),
    }


def stage_figures(summary: dict[str, Any], curve: list[dict[str, float]]) -> dict[str, Any]:
    """Pictures of what train and tune wrote: loss curves, learning curve, tuning history."""
    primary = summary["primary_metric"]
    history = pd.read_csv(TRAIN_HISTORY)
    model = io.read_json(TRAIN_METRICS)["model"]  # the history is of the first seed's run
    best_epoch = model["seeds"][str(model["history_seed"])]["best_epoch"]
    figures = {"loss_curves.png": plots.history_figure(history.to_dict("records"), best_epoch)}
    if curve:
        figures["learning_curve.png"] = plots.learning_curve_figure(
            pd.DataFrame(curve), primary, summary["baseline_dev"]
        )
    trials = pd.read_csv(TUNE_TRIALS)
    if len(trials):
        metric = io.read_json(TUNE_METRICS)["metric"]
        figures["tuning_history.png"] = plots.tuning_history_figure(
            trials.to_dict("records"), pd.read_csv(TUNE_HISTORY).to_dict("records"), metric
        )
    return figures


def write_plots(
    directory: Path,
    schema: Schema,
    y_true: np.ndarray,
    prediction: tuple,
    summary: dict[str, Any],
    curve: list[dict[str, float]],
    params: Any,
) -> list[str]:
    """Write every table and the applicable PNGs into `directory`; return the PNG names."""
    tables = {name: curves.empty(name) for name in PLOT_TABLES}
    if schema.task == "classification":
        y_pred, proba = prediction
        tables.update(classification_tables(schema, y_true, y_pred, proba, params.calibration_bins))
        figures = classification_figures(schema, y_true, prediction, tables, summary)
    else:
        tables["residuals"] = curves.residual_table(y_true, prediction[0])
        figures = regression_figures(tables["residuals"], summary)
    figures.update(stage_figures(summary, curve))
    for name, table in tables.items():
        io.write_csv(directory / f"{name}.csv", table)
    for name, figure in figures.items():
        plots.save(figure, directory / name)
    return list(figures)
