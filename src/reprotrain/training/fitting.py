"""Fit one configuration and score it on train and dev: shared by `train` and `tune`."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from reprotrain import config, metrics
from reprotrain.config import BaseParams, FeaturesParams, TrainParams
from reprotrain.config.errors import UserError
from reprotrain.config.paths import CHECKPOINT_DIR, SPLIT_FILES
from reprotrain.data import datasets
from reprotrain.data.features import CHUNK_ROWS, Preprocessor, fit_preprocessor
from reprotrain.data.schema import Schema
from reprotrain.data.tables import read_batches, read_frame, row_count
from reprotrain.models.model import TORCH_MODELS, FitOptions, build_model

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass
class Fitted:
    model: Any
    seed: int
    train_scores: dict[str, float]
    dev_scores: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    dev_recall: dict[str, float] | None = None  # per class (classification)
    # Under cross-validation (training/validation.py): the out-of-fold predictions of the
    # first repeat (labels or values, probabilities) and each fold's dev scores.
    oof: tuple[np.ndarray, np.ndarray | None] | None = None
    dev_folds: list[dict[str, float]] | None = None


def load_train_dev(
    schema: Schema, params: FeaturesParams | None = None, dtype: Any = np.float32
) -> tuple[Preprocessor, Arrays, Arrays]:
    """Fit the preprocessor on train; train and dev as (features, targets) arrays.

    `params`: the `features` section of params.yaml (read from it when not given).
    `dtype`: of the feature matrices; the one the model computes in (`models.input_dtype`),
    so that it makes no copy of its own.
    """
    if params is None:
        params = cast(FeaturesParams, config.load("features")[0])
    # The train frame lives only while the preprocessor is fitted. Each split is then read
    # again in row batches, straight into its matrix: memory never holds a frame and its
    # matrix together.
    preprocessor = fit_preprocessor(read_frame(SPLIT_FILES["train"]), schema, params)
    train = read_arrays(SPLIT_FILES["train"], preprocessor, schema, dtype)
    dev = read_arrays(SPLIT_FILES["dev"], preprocessor, schema, dtype)
    return preprocessor, train, dev


def read_arrays(
    path: Path, preprocessor: Preprocessor, schema: Schema, dtype: Any = np.float32
) -> Arrays:
    """A split file through a fitted preprocessor, batch by batch: (features, targets)."""
    n_rows = row_count(path)
    features = np.empty((n_rows, len(preprocessor.feature_names)), dtype=dtype)
    targets, start = [], 0
    for batch in read_batches(path, [*preprocessor.columns, schema.target], CHUNK_ROWS):
        preprocessor.transform(batch, out=features[start : start + len(batch)])
        targets.append(datasets.encode_target(batch, schema))
        start += len(batch)
    return features, np.concatenate(targets)


def configure_threads(base: BaseParams) -> None:
    """`base.threads` caps OpenMP and BLAS (HistGradientBoosting, numpy, scikit-learn's
    linear models): the environment for libraries loaded later, threadpoolctl for those
    loaded already. Process-wide, until the stage ends."""
    import os

    from threadpoolctl import threadpool_limits

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(base.threads)
    import sklearn.ensemble  # noqa: F401  loads scikit-learn's OpenMP runtime, to be capped

    threadpool_limits(limits=base.threads)


def configure_torch(base: BaseParams, model: str | None = None) -> None:
    """A fixed thread count and deterministic kernels: same params, same bytes.

    `model`: the one to train; for a scikit-learn model torch is not even imported (it
    would cost the process a few hundred MB for nothing).
    """
    import os

    configure_threads(base)
    if model is not None and model not in TORCH_MODELS:
        return
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.set_num_threads(base.threads)
    # warn_only: a CUDA kernel without a deterministic version warns instead of failing.
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_progress(mode: str) -> str:
    """train.progress: `auto` is a bar on a terminal, log lines otherwise."""
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "log"
    return mode


def resample(train: Arrays, strategy: str, seed: int) -> Arrays:
    """Over- or undersample the training split to equal class counts (seeded).

    Applied to the training split only: dev and test keep their natural distribution.
    """
    if strategy not in ("oversample", "undersample"):
        return train
    features, labels = train
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    size = max(map(len, groups)) if strategy == "oversample" else min(map(len, groups))
    chosen = np.concatenate(
        [
            rng.choice(group, size=size, replace=strategy == "oversample" and len(group) < size)
            for group in groups
        ]
    )
    chosen.sort()
    return features[chosen], labels[chosen]


def fingerprint(recipe: dict[str, Any], arrays: Iterable[np.ndarray]) -> str:
    """sha256 of a recipe (as JSON, keys sorted) and of the arrays it runs on: what a
    checkpoint (a training run) or a study (its trials) belongs to."""
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).data)  # the buffer itself: no copy
    return digest.hexdigest()


def checkpoint_path(params: TrainParams, seed: int) -> Path | None:
    """Where a seed's run checkpoints its epochs (`train.checkpoint`), so a killed run resumes."""
    return CHECKPOINT_DIR / f"seed-{seed}.pt" if params.checkpoint else None


def fit_and_score(
    params: TrainParams,
    schema: Schema,
    seed: int,
    train: Arrays,
    dev: Arrays,
    *,
    on_epoch: Any = None,
    checkpoint: Path | None = None,
    progress: str = "off",
    label: str = "",
) -> Fitted:
    """Train the configured model with one seed; score its best weights on train and dev."""
    task = schema.task
    if task == "regression" and params.imbalance != "none":
        raise UserError(
            "params.yaml: train.imbalance: class imbalance handling needs a classification "
            f"task; allowed for regression: none, got {params.imbalance!r}"
        )
    model = build_model(params, schema, seed)
    options = FitOptions(
        on_epoch=on_epoch,
        checkpoint=checkpoint,
        # what a checkpoint belongs to: only worth hashing the data when there is one
        fingerprint=fingerprint({"train": params.model_dump(), "seed": seed}, (*train, *dev))
        if checkpoint
        else "",
        image_shape=schema.image_shape,
        progress=progress,
        label=label,
    )
    history = model.fit(resample(train, params.imbalance, seed), dev, options)
    train_scores = metrics.score_model(model, task, train)
    dev_scores = metrics.score_model(model, task, dev)
    if not history:  # models without epochs: one row, so every model has a history
        history = [metrics.history_row(task, 1, train_scores, dev_scores)]
    dev_recall = None
    if task == "classification":
        dev_recall = metrics.per_class_recall(dev[1], model.predict(dev[0]), schema.labels)
    return Fitted(
        model=model,
        seed=seed,
        train_scores=train_scores,
        dev_scores=dev_scores,
        history=history,
        best_epoch=model.best_epoch,
        dev_recall=dev_recall,
    )


def summarize(task: str, baselines: dict[str, Any], fitted: list[Fitted]) -> dict[str, Any]:
    """train.json: the baselines' scores (`baseline`, `strong_baseline`) and the model's
    on train and dev, per seed and mean ± std (over seeds, and folds under
    cross-validation)."""
    per_seed = {
        str(run.seed): {
            "train": run.train_scores,
            "dev": run.dev_scores,
            "best_epoch": run.best_epoch,
            "dev_recall_per_class": run.dev_recall,
            **({"dev_folds": run.dev_folds} if run.dev_folds is not None else {}),
        }
        for run in fitted
    }
    # Under cross-validation the spread is over every fold of every seed: what a new
    # split of this much data would move the score by, not only a new seed.
    dev_rows = [row for run in fitted for row in (run.dev_folds or [run.dev_scores])]
    return {
        "task": task,
        "primary_metric": metrics.PRIMARY[task],
        **baselines,
        "model": {
            # the first seed: its per-epoch history is metrics/train_history.csv
            "history_seed": fitted[0].seed,
            "seeds": per_seed,
            "train": metrics.summarize_seeds([run.train_scores for run in fitted]),
            "dev": metrics.summarize_seeds(dev_rows),
        },
    }
