"""Matplotlib figures for MLflow artifacts (DVC renders its own plots from the CSVs)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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
                int(matrix[row, column]),
                ha="center",
                va="center",
                color=color,
                fontsize=8,
            )
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    return figure
