"""Matplotlib figures for MLflow artifacts (DVC renders its own plots from the CSVs)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def history_figure(history: list[dict[str, float]]) -> Any:
    """Train and dev loss (left) and score (right) per epoch."""
    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "dev"):
        loss_axis.plot(epochs, [row[f"{split}_loss"] for row in history], label=split)
        score_axis.plot(epochs, [row[f"{split}_score"] for row in history], label=split)
    loss_axis.set(xlabel="epoch", ylabel="loss", title="Loss per epoch")
    score_axis.set(xlabel="epoch", ylabel="score", title="Score per epoch")
    for axis in (loss_axis, score_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def confusion_figure(matrix: np.ndarray, labels: list[str], title: str) -> Any:
    """A labelled confusion matrix with counts in the cells."""
    size = max(4.0, 0.5 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(matrix, cmap="Blues")
    axis.set(
        xticks=range(len(labels)),
        yticks=range(len(labels)),
        xticklabels=labels,
        yticklabels=labels,
        xlabel="predicted",
        ylabel="actual",
        title=title,
    )
    threshold = matrix.max() / 2 if matrix.size else 0
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            color = "white" if matrix[row, column] > threshold else "black"
            axis.text(
                column,
                row,
                str(int(matrix[row, column])),
                ha="center",
                va="center",
                color=color,
                fontsize=8,
            )
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    return figure


def save(figure: Any, path: Any) -> None:
    """Write a PNG without a software/version stamp (same data, same bytes) and close it."""
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)


def _finish(axis: Any, legend: bool = True) -> None:
    axis.grid(alpha=0.3)
    if legend:
        axis.legend(fontsize=8, loc="best")


def _class_lines(axis: Any, curves: dict, labels: list[str], x: str, y: str) -> None:
    """Thin per-class curves; one-vs-rest with many classes stays readable."""
    for index, curve in curves.items():
        axis.plot(curve[x], curve[y], linewidth=0.8, alpha=0.6, label=f"class {labels[index]}")


def roc_figure(curves: dict, macro: Any, labels: list[str], auc: float | None, title: str) -> Any:
    """Per-class ROC curves, their macro average and the chance diagonal."""
    figure, axis = plt.subplots(figsize=(6, 5.5))
    _class_lines(axis, curves, labels, "fpr", "tpr")
    name = "macro average" if len(curves) > 1 else "ROC"
    if auc is not None:
        name += f" (AUC {auc:.3f})"
    axis.plot(macro["fpr"], macro["tpr"], color="black", linewidth=2.2, label=name)
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axis.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
    )
    _finish(axis)
    figure.tight_layout()
    return figure


def precision_recall_figure(curves: dict, macro: Any, labels: list[str], title: str) -> Any:
    """Per-class precision-recall curves, their macro average and the chance level."""
    figure, axis = plt.subplots(figsize=(6, 5.5))
    _class_lines(axis, curves, labels, "recall", "precision")
    axis.plot(
        macro["recall"], macro["precision"], color="black", linewidth=2.2, label="macro average"
    )
    if len(macro):
        axis.axhline(macro["chance"].iloc[0], linestyle="--", color="grey", label="chance")
    axis.set(xlabel="recall", ylabel="precision", title=title, xlim=(-0.01, 1.01), ylim=(0, 1.02))
    _finish(axis)
    figure.tight_layout()
    return figure


def calibration_figure(table: Any, title: str, binary: bool) -> Any:
    """Reliability diagram (top) and how many test rows fall in each bin (bottom)."""
    figure, (axis, counts) = plt.subplots(
        2, 1, figsize=(6, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    axis.plot(table["confidence"], table["observed"], marker="o", label="model")
    observed = "fraction of positives" if binary else "accuracy"
    axis.set(ylabel=observed, title=title, ylim=(-0.02, 1.02))
    _finish(axis)
    counts.bar(table["confidence"], table["count"], width=0.05, color="tab:blue", alpha=0.7)
    confidence = "predicted probability (positive class)" if binary else "confidence (top class)"
    counts.set(xlabel=confidence, ylabel="test rows", xlim=(-0.02, 1.02))
    counts.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def predicted_vs_actual_figure(table: Any, title: str) -> Any:
    """Predicted against actual values, with the identity line."""
    figure, axis = plt.subplots(figsize=(6, 5.5))
    axis.scatter(table["actual"], table["predicted"], s=14, alpha=0.6, label="test rows")
    low = float(min(table["actual"].min(), table["predicted"].min()))
    high = float(max(table["actual"].max(), table["predicted"].max()))
    axis.plot([low, high], [low, high], linestyle="--", color="grey", label="predicted = actual")
    axis.set(xlabel="actual", ylabel="predicted", title=title)
    _finish(axis)
    figure.tight_layout()
    return figure


def residuals_figure(table: Any, title: str) -> Any:
    """Residuals (predicted - actual) against predicted values, and their histogram."""
    figure, (axis, histogram) = plt.subplots(
        1, 2, figsize=(10, 4.5), gridspec_kw={"width_ratios": [2, 1]}
    )
    axis.scatter(table["predicted"], table["residual"], s=14, alpha=0.6)
    axis.axhline(0.0, linestyle="--", color="grey")
    axis.set(xlabel="predicted", ylabel="residual (predicted - actual)", title=title)
    axis.grid(alpha=0.3)
    histogram.hist(table["residual"], bins=20, orientation="horizontal", alpha=0.7)
    histogram.set(xlabel="test rows", ylabel="residual", title="Residual distribution")
    histogram.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def tuning_history_figure(trials: Any, best: list[float], metric: str) -> Any:
    """Dev score of each tuning trial and the best score found so far."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    scored = trials["dev_score"].notna()
    axis.scatter(trials["trial"][scored], trials["dev_score"][scored], s=20, label="trial")
    axis.step(trials["trial"], best, where="post", color="black", label="best so far")
    if not scored.all():  # pruned or failed: no dev score; marked along the bottom edge
        states = sorted(set(trials["state"][~scored])) if "state" in trials else ["no score"]
        axis.scatter(
            trials["trial"][~scored],
            [0.03] * int((~scored).sum()),
            marker="x",
            color="grey",
            transform=axis.get_xaxis_transform(),
            label=f"{' / '.join(states)} (no dev score)",
        )
    axis.set(xlabel="trial", ylabel=f"dev {metric}", title="Tuning history (dev only)")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(axis)
    figure.tight_layout()
    return figure


def learning_curve_figure(curve: Any, metric: str, baseline: float | None) -> Any:
    """Train and dev score against the number of training rows used."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(curve["n_train"], curve["train_score"], marker="o", label="train")
    axis.plot(curve["n_train"], curve["dev_score"], marker="o", label="dev")
    if baseline is not None:
        axis.axhline(baseline, linestyle="--", color="grey", label="baseline (dev)")
    axis.set(xlabel="training rows used", ylabel=metric, title="Learning curve (first train seed)")
    _finish(axis)
    figure.tight_layout()
    return figure


def study_history_figure(rows: list[dict[str, Any]], metric: str, direction: str) -> Any:
    """Optimization history: each complete trial's dev value, the best so far, pruned trials.

    `rows` are (trial, state, value) records; a pruned trial is drawn at its last reported
    epoch value.
    """
    pick = max if direction == "maximize" else min
    figure, axis = plt.subplots(figsize=(7, 4.5))
    complete = [row for row in rows if row["state"] == "complete"]
    pruned = [row for row in rows if row["state"] == "pruned" and row["value"] is not None]
    axis.scatter(
        [r["trial"] for r in complete], [r["value"] for r in complete], s=22, label="complete"
    )
    if pruned:
        axis.scatter(
            [r["trial"] for r in pruned],
            [r["value"] for r in pruned],
            s=22,
            marker="x",
            color="grey",
            label="pruned (last epoch)",
        )
    best, steps = None, []
    for row in complete:
        best = row["value"] if best is None else pick(best, row["value"])
        steps.append(best)
    if complete:
        axis.step(
            [r["trial"] for r in complete], steps, where="post", color="black", label="best so far"
        )
    axis.set(
        xlabel="trial", ylabel=f"dev {metric} ({direction})", title="Optimization history (dev)"
    )
    _finish(axis)
    figure.tight_layout()
    return figure


def importance_figure(importances: dict[str, float]) -> Any:
    """Each tuned param's share of the dev-score variance (fANOVA), largest on top."""
    names = sorted(importances, key=lambda name: importances[name])
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    axis.barh(names, [importances[name] for name in names])
    axis.set(xlabel="importance (fANOVA)", title="Hyperparameter importance (dev)")
    axis.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    return figure
