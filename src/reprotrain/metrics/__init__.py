"""Scores of predictions (accuracy, R², log loss, ...): pure functions of arrays,
used by the training loop per epoch and by evaluation.
"""

from reprotrain.metrics.scores import (  # the package's public API
    LOSS,
    PRIMARY,
    confusion_rows,
    evaluation_scores,
    history_row,
    log_loss,
    mean_std,
    per_class_recall,
    per_class_scores,
    roc_auc,
    score_model,
    scores,
    summarize_seeds,
    with_interval,
)

__all__ = [
    "PRIMARY",
    "LOSS",
    "scores",
    "log_loss",
    "per_class_recall",
    "score_model",
    "history_row",
    "mean_std",
    "summarize_seeds",
    "confusion_rows",
    "roc_auc",
    "evaluation_scores",
    "per_class_scores",
    "with_interval",
]
