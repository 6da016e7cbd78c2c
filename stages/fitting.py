"""Fit one configuration and score it on train and dev: shared by `train` and `tune`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stages import metrics
from stages.config import BaseParams, TrainParams
from stages.models import build_model

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass
class Fitted:
    model: Any
    seed: int
    train_scores: dict[str, float]
    dev_scores: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None


def configure_torch(base: BaseParams) -> None:
    """A fixed thread count and deterministic kernels: same params, same bytes."""
    import torch

    torch.set_num_threads(base.threads)
    torch.use_deterministic_algorithms(True)


def fit_and_score(
    params: TrainParams,
    schema: dict[str, Any],
    seed: int,
    train: Arrays,
    dev: Arrays,
    on_epoch: Any = None,
) -> Fitted:
    """Train the configured model with one seed; score its best weights on train and dev."""
    model = build_model(params, schema, seed)
    if model.family == "torch":
        history = model.fit(train, dev, on_epoch=on_epoch)
    else:
        history = model.fit(train, dev)
    task = schema["task"]
    train_scores = metrics.score_model(model, task, train)
    dev_scores = metrics.score_model(model, task, dev)
    if not history:  # models without epochs: one row, so every model has a history
        history = [metrics.history_row(task, 1, train_scores, dev_scores)]
    return Fitted(
        model=model,
        seed=seed,
        train_scores=train_scores,
        dev_scores=dev_scores,
        history=history,
        best_epoch=getattr(model, "best_epoch", None),
    )
