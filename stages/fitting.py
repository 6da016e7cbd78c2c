"""Fit one configuration and score it on train and dev: shared by `train` and `tune`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stages import datasets, metrics
from stages.config import BaseParams, TrainParams
from stages.features import Preprocessor, fit_preprocessor
from stages.models import build_model
from stages.paths import SPLIT_FILES

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass
class Fitted:
    model: Any
    seed: int
    train_scores: dict[str, float]
    dev_scores: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None


def load_train_dev(schema: dict[str, Any]) -> tuple[Preprocessor, Arrays, Arrays]:
    """Read train and dev, fit the preprocessor on train, return both as arrays."""
    train_frame = pd.read_parquet(SPLIT_FILES["train"])
    dev_frame = pd.read_parquet(SPLIT_FILES["dev"])
    preprocessor = fit_preprocessor(train_frame, schema)
    train = (preprocessor.transform(train_frame), datasets.encode_target(train_frame, schema))
    dev = (preprocessor.transform(dev_frame), datasets.encode_target(dev_frame, schema))
    return preprocessor, train, dev


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
