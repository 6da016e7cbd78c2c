"""Matplotlib figures for MLflow artifacts (DVC renders its own plots from the CSVs)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def history_figure(history: list[dict[str, float]], best_epoch: int | None = None) -> Any:
    """Train and dev loss (left) and score (right) per epoch; a dotted line at `best_epoch`,
    the epoch whose weights the model keeps."""
    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "dev"):
        loss_axis.plot(epochs, [row[f"{split}_loss"] for row in history], label=split)
        score_axis.plot(epochs, [row[f"{split}_score"] for row in history], label=split)
    loss_axis.set(xlabel="epoch", ylabel="loss", title="Loss per epoch")
    score_axis.set(xlabel="epoch", ylabel="score", title="Score per epoch")
    for axis in (loss_axis, score_axis):
        if best_epoch is not None:
            axis.axvline(
                best_epoch, color="black", linestyle=":", label=f"best epoch ({best_epoch})"
            )
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


# ROC and PR axes reach a little past [0, 1]: a perfect curve runs along the edges, where
# the spines would hide it.
UNIT_RANGE = (-0.03, 1.03)


def _class_lines(axis: Any, curves: dict, labels: list[str], x: str, y: str) -> None:
    """Per-class curves under the macro average; many classes stay readable."""
    for index, curve in curves.items():
        axis.plot(curve[x], curve[y], linewidth=1.2, alpha=0.7, label=f"class {labels[index]}")


def _macro_line(axis: Any, x: Any, y: Any, label: str) -> None:
    """The macro average on top, dashed: the class curves it covers show between the dashes."""
    axis.plot(x, y, color="black", linewidth=1.8, linestyle=(0, (4, 3)), label=label, zorder=3)


def roc_figure(curves: dict, macro: Any, labels: list[str], auc: float | None, title: str) -> Any:
    """Per-class ROC curves, their macro average and the chance diagonal."""
    figure, axis = plt.subplots(figsize=(6, 5.5))
    _class_lines(axis, curves, labels, "fpr", "tpr")
    name = "macro average" if len(curves) > 1 else "ROC"
    if auc is not None:
        name += f" (AUC {auc:.3f})"
    _macro_line(axis, macro["fpr"], macro["tpr"], name)
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1.0, label="chance")
    axis.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
        xlim=UNIT_RANGE,
        ylim=UNIT_RANGE,
    )
    _finish(axis)
    figure.tight_layout()
    return figure


def precision_recall_figure(curves: dict, macro: Any, labels: list[str], title: str) -> Any:
    """Per-class precision-recall curves, their macro average and the chance level."""
    figure, axis = plt.subplots(figsize=(6, 5.5))
    _class_lines(axis, curves, labels, "recall", "precision")
    _macro_line(axis, macro["recall"], macro["precision"], "macro average")
    if len(macro):
        axis.axhline(
            macro["chance"].iloc[0], linestyle="--", color="grey", linewidth=1.0, label="chance"
        )
    axis.set(xlabel="recall", ylabel="precision", title=title, xlim=UNIT_RANGE, ylim=UNIT_RANGE)
    _finish(axis)
    figure.tight_layout()
    return figure


def calibration_figure(table: Any, title: str, binary: bool, ece: float | None = None) -> Any:
    """Reliability diagram (top, with the expected calibration error `ece` in the legend)
    and how many test rows fall in each bin (bottom, each bar labelled with its count)."""
    figure, (axis, counts) = plt.subplots(
        2, 1, figsize=(6, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    model = "model" if ece is None else f"model (ECE {ece:.3f})"
    axis.plot(table["confidence"], table["observed"], marker="o", label=model)
    # the same name as the DVC plot's axis; what is observed depends on the task
    observed = "(share of positives)" if binary else "(share of top-class predictions right)"
    axis.set(ylabel=f"observed frequency\n{observed}", title=title, ylim=(-0.02, 1.02))
    _finish(axis)
    bars = counts.bar(table["confidence"], table["count"], width=0.05, color="tab:blue", alpha=0.7)
    counts.bar_label(bars, fontsize=7, padding=1)
    counts.margins(y=0.3)  # room for the labels above the tallest bar
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


def _number(value: Any) -> bool:
    return value is not None and value == value  # not None, not nan (a blank CSV cell)


def tuning_history_figure(
    trials: list[dict[str, Any]], history: list[dict[str, Any]], metric: str
) -> Any:
    """Each complete trial's dev score, the best so far, and pruned trials apart.

    `trials` are `tuning.trials_table` rows (trial, state, dev_score,
    last_epoch_dev_score), `history` its `history_table` (complete trials, best_so_far). A
    pruned trial has no dev score: it is drawn as a grey x at the dev value of the epoch it
    was stopped at; a trial with no value at all (failed) is only counted in the legend.
    """
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.scatter(
        [row["trial"] for row in history],
        [row["dev_score"] for row in history],
        s=24,
        label="complete trial",
        zorder=3,
    )
    if history:
        last = max(row["trial"] for row in trials)  # the line runs on to the last trial
        axis.step(
            [row["trial"] for row in history] + [last],
            [row["best_so_far"] for row in history] + [history[-1]["best_so_far"]],
            where="post",
            color="black",
            label="best so far",
        )
    pruned = [
        row
        for row in trials
        if row["state"] == "pruned" and _number(row.get("last_epoch_dev_score"))
    ]
    if pruned:
        axis.scatter(
            [row["trial"] for row in pruned],
            [row["last_epoch_dev_score"] for row in pruned],
            s=30,
            marker="x",
            color="grey",
            label="pruned (dev when stopped)",
        )
    complete_or_drawn = {row["trial"] for row in history} | {row["trial"] for row in pruned}
    undrawn = [row for row in trials if row["trial"] not in complete_or_drawn]
    if undrawn:  # legend text only: nothing to draw
        states = " / ".join(sorted({row["state"] for row in undrawn}))
        axis.plot([], [], " ", label=f"{len(undrawn)} {states}, no value: not drawn")
    axis.set(xlabel="trial", ylabel=f"dev {metric}", title="Tuning history (dev only)")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(axis)
    figure.tight_layout()
    return figure


def learning_curve_figure(curve: Any, metric: str, baseline: float | None) -> Any:
    """Train and dev score against the number of training rows used.

    The baseline's dev score is a line only when it lies near the model curves; far below
    them (a majority-class baseline) it would stretch the axis, so it is named in the
    legend with its value instead.
    """
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(curve["n_train"], curve["train_score"], marker="o", label="train")
    axis.plot(curve["n_train"], curve["dev_score"], marker="o", label="dev")
    if baseline is not None:
        scores = np.concatenate([curve["train_score"], curve["dev_score"]]).astype(float)
        low, high = float(np.nanmin(scores)), float(np.nanmax(scores))
        slack = max(high - low, 0.02)  # how far off the curves a line may still be drawn
        if low - slack <= baseline <= high + slack:
            axis.axhline(baseline, linestyle="--", color="grey", label="baseline (dev)")
        else:
            where = "below" if baseline < low else "above"
            axis.plot([], [], " ", label=f"baseline (dev): {baseline:.3g}, {where} the axis")
    axis.set(xlabel="training rows used", ylabel=metric, title="Learning curve (first train seed)")
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
