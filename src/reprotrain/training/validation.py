"""How `train` and `tune` score a configuration before the test set: on the dev split
(`Holdout`) or by k-fold cross-validation over train+dev (`CrossValidation`, when `split`
cut folds: small data, see data/folds.py).

Both give the same things to the stages: a fit of the configured model scored on unseen
rows (`fit`), a baseline's (`fit_baseline`), the predictions of unseen rows that paired
comparisons use (`dev_prediction`), the learning curve and the dev error analysis. Under
cross-validation the scores are the means over the folds (std over folds and repeats),
the unseen predictions are out-of-fold, and the model returned is refit on all of
train+dev: the test set stays sealed either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import pandas as pd

from reprotrain import config, metrics
from reprotrain.config import FeaturesParams, TrainParams
from reprotrain.config.errors import UserError
from reprotrain.config.paths import CV_PREDICTIONS, FOLDS, SPLIT_FILES
from reprotrain.data import datasets, folds
from reprotrain.data.features import Preprocessor, fit_preprocessor
from reprotrain.data.schema import Schema
from reprotrain.data.tables import read_frame
from reprotrain.metrics import dev_errors
from reprotrain.metrics.dev_errors import Prediction
from reprotrain.models.model import TORCH_MODELS, Model
from reprotrain.training import learning_curve
from reprotrain.training.fitting import Arrays, Fitted, fit_and_score, load_train_dev

log = logging.getLogger(__name__)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}


class Holdout:
    """Score on the dev split; the model returned is the one fitted on train."""

    method = "holdout"
    step = "epoch"  # what a fit reports to `on_epoch` (and a pruner compares)

    def __init__(self, train: Arrays, dev: Arrays):
        self.train, self.dev = train, dev

    @property
    def y_dev(self) -> np.ndarray:
        return self.dev[1]

    @property
    def fit_rows(self) -> int:
        """Rows the models are fitted on."""
        return len(self.train[1])

    def arrays(self) -> tuple[np.ndarray, ...]:
        """What the scores depend on (a study's fingerprint)."""
        return (*self.train, *self.dev)

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "train_rows": len(self.train[1]),
            "dev_rows": len(self.dev[1]),
        }

    def fit(self, params: TrainParams, schema: Schema, seed: int, **options: Any) -> Fitted:
        return fit_and_score(params, schema, seed, self.train, self.dev, **options)

    def fit_baseline(
        self, make: Callable[[], Model], task: str
    ) -> tuple[Model, dict[str, dict[str, float]]]:
        """A model without hyperparameters (`make()` builds it), scored on train and dev."""
        model = make()
        model.fit(self.train, self.dev)
        scores = {name: metrics.score_model(model, task, data) for name, data in self.splits()}
        return model, scores

    def splits(self) -> tuple[tuple[str, Arrays], ...]:
        return (("train", self.train), ("dev", self.dev))

    def dev_prediction(self, fitted: Fitted) -> Prediction:
        return fitted.model.predict(self.dev[0]), fitted.model.predict_proba(self.dev[0])

    def curve(
        self,
        params: TrainParams,
        fractions: list[float],
        schema: Schema,
        first: Fitted,
        progress: str,
    ) -> list[dict[str, float]]:
        return learning_curve.for_train(
            params, fractions, schema, self.dev, self.train, first, progress
        )

    def errors(self, schema: Schema, fitted: Fitted) -> dict[str, Any]:
        """The dev error analysis of a fitted model."""
        frame = read_frame(SPLIT_FILES["dev"])
        return dev_errors.of_model(fitted.model, schema, frame, self.dev, fitted.seed)


# A fold's fit: the model and its scores on the fold's training and held-out rows.
FoldFit = tuple[Model, dict[str, float], dict[str, float]]


@dataclass(frozen=True)
class Fold:
    train: Arrays
    dev: Arrays  # the held-out rows
    dev_rows: np.ndarray  # their positions among the development rows
    repeat: int  # 0-based


class CrossValidation:
    """Score on k folds of train+dev (repeated); the model returned is refit on all of it.

    Each fold has its own feature preprocessing, fit on the fold's training rows only.
    """

    method = "cross-validation"
    step = "fold"  # a fit reports the running means after each fold

    def __init__(self, development: Arrays, fold_list: list[Fold], n_folds: int, repeats: int):
        self.development, self.folds = development, fold_list
        self.n_folds, self.repeats = n_folds, repeats

    @property
    def y_dev(self) -> np.ndarray:
        return self.development[1]

    @property
    def fit_rows(self) -> int:
        """Rows the final models are fitted on."""
        return len(self.development[1])

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (*self.development, *(fold.dev_rows for fold in self.folds))

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "folds": self.n_folds,
            "repeats": self.repeats,
            "rows": len(self.development[1]),
            "refit_rows": len(self.development[1]),
        }

    def fit(
        self,
        params: TrainParams,
        schema: Schema,
        seed: int,
        *,
        on_epoch: Any = None,
        label: str = "",
        **options: Any,
    ) -> Fitted:
        """Scores over the folds; the model refit on all development rows. `on_epoch` hears,
        after each fold, the running means so far (step = folds done): what a pruner compares."""

        fold_options = {key: value for key, value in options.items() if key != "checkpoint"}

        def fit_fold(train: Arrays, dev: Arrays, number: int) -> FoldFit:
            fold_label = f"{label} fold {number} of {len(self.folds)}".strip()
            run = fit_and_score(params, schema, seed, train, dev, label=fold_label, **fold_options)
            return run.model, run.train_scores, run.dev_scores

        scores, prediction = self._validate(fit_fold, schema.task, on_epoch)
        refit = fit_and_score(params, schema, seed, self.development, self.development, **options)
        recall = None
        if schema.is_classification:
            recall = metrics.per_class_recall(self.y_dev, prediction[0], schema.labels)
        train_scores, dev_scores = _mean(scores["train"]), _mean(scores["dev"])
        return replace(
            refit,
            train_scores=train_scores,
            dev_scores=dev_scores,
            # one row, as for any model fitted in one go: the folds are not epochs
            history=[metrics.history_row(schema.task, 1, train_scores, dev_scores)],
            dev_recall=recall,
            oof=prediction,
            dev_folds=scores["dev"],
        )

    def fit_baseline(
        self, make: Callable[[], Model], task: str
    ) -> tuple[Model, dict[str, dict[str, float]]]:
        """A model without hyperparameters (`make()` builds it): scored over the folds,
        then refit on all development rows."""

        def fit_fold(train: Arrays, dev: Arrays, number: int) -> FoldFit:
            model = make()
            model.fit(train, dev)
            return (
                model,
                metrics.score_model(model, task, train),
                metrics.score_model(model, task, dev),
            )

        scores, _ = self._validate(fit_fold, task, None)
        model = make()
        model.fit(self.development, self.development)
        return model, {"train": _mean(scores["train"]), "dev": _mean(scores["dev"])}

    def _validate(
        self, fit_fold: Callable[[Arrays, Arrays, int], FoldFit], task: str, on_epoch: Any
    ) -> tuple[dict[str, list[dict[str, float]]], Prediction]:
        """Fit and score every fold: the scores per fold and the first repeat's out-of-fold
        predictions; `on_epoch` hears a row of running means after each fold."""
        scores: dict[str, list[dict[str, float]]] = {"train": [], "dev": []}
        labels = np.empty(len(self.y_dev), dtype=self.y_dev.dtype)
        proba: np.ndarray | None = None
        for number, fold in enumerate(self.folds, start=1):
            model, train_scores, dev_scores = fit_fold(fold.train, fold.dev, number)
            scores["train"].append(train_scores)
            scores["dev"].append(dev_scores)
            if fold.repeat == 0:
                labels[fold.dev_rows] = model.predict(fold.dev[0])
                fold_proba = model.predict_proba(fold.dev[0])
                if fold_proba is not None:
                    if proba is None:
                        proba = np.zeros((len(labels), fold_proba.shape[1]))
                    proba[fold.dev_rows] = fold_proba
            if on_epoch is not None:
                on_epoch(
                    metrics.history_row(task, number, _mean(scores["train"]), _mean(scores["dev"]))
                )
        return scores, (labels, proba)

    def dev_prediction(self, fitted: Fitted) -> Prediction:
        assert fitted.oof is not None, "a fit of this cross-validation"
        return fitted.oof

    def curve(
        self,
        params: TrainParams,
        fractions: list[float],
        schema: Schema,
        first: Fitted,
        progress: str,
    ) -> list[dict[str, float]]:
        """The learning curve of each fold of the first repeat, averaged fraction by fraction."""
        curves = [
            learning_curve.for_train(
                params, fractions, schema, fold.dev, fold.train, None, progress, seed=first.seed
            )
            for fold in self.folds
            if fold.repeat == 0
        ]
        return [_mean(list(rows)) for rows in zip(*curves, strict=True)] if fractions else []

    def errors(self, schema: Schema, fitted: Fitted) -> dict[str, Any]:
        """The error analysis of the out-of-fold predictions (first repeat) of every
        development row, and those predictions (what evaluate chooses on)."""
        frame = development_frame()
        labels, proba = self.dev_prediction(fitted)
        analysis = dev_errors.analyse(schema, frame, self.y_dev, labels, proba, fitted.seed)
        table = pd.DataFrame({"actual": self.y_dev, "predicted": labels})
        if proba is not None:
            table = pd.concat([table, pd.DataFrame(proba).add_prefix("proba_")], axis=1)
        return analysis | {CV_PREDICTIONS: table}


Validation = Holdout | CrossValidation


def development_frame() -> pd.DataFrame:
    """train.parquet's rows, then dev.parquet's: the rows the folds number."""
    frames = [read_frame(SPLIT_FILES[name]) for name in ("train", "dev")]
    return pd.concat(frames, ignore_index=True)


def frame_arrays(
    frame: pd.DataFrame, preprocessor: Preprocessor, schema: Schema, dtype: Any
) -> Arrays:
    features = np.empty((len(frame), len(preprocessor.feature_names)), dtype=dtype)
    preprocessor.transform(frame, out=features)
    return features, datasets.encode_target(frame, schema)


def load_validation(
    schema: Schema, models: list[str], params: FeaturesParams | None = None, dtype: Any = np.float32
) -> tuple[Preprocessor, Validation]:
    """The preprocessor the saved models carry, and how to score them: cross-validation
    when `split` cut folds and no model in `models` is a torch net (nets early-stop on
    the dev split), the dev split otherwise."""
    if params is None:
        params = cast(FeaturesParams, config.load("features")[0])
    codes = folds.read(FOLDS)
    torch_models = sorted(set(models) & set(TORCH_MODELS))
    if codes is not None and torch_models:
        log.info(
            "cross-validation folds in %s unused: %s early-stops on the dev split, which scores it",
            FOLDS,
            ", ".join(torch_models),
        )
    if codes is None or torch_models:
        preprocessor, train, dev = load_train_dev(schema, params, dtype)
        return preprocessor, Holdout(train, dev)
    frame = development_frame()
    if len(frame) != len(codes):
        raise UserError(
            f"{FOLDS}: {len(codes)} rows, but train and dev hold {len(frame)}; rerun the split "
            "stage (dvc repro split)"
        )
    preprocessor = fit_preprocessor(frame, schema, params)
    development = frame_arrays(frame, preprocessor, schema, dtype)
    fold_list = []
    for repeat in range(codes.shape[1]):
        for number in range(int(codes[:, repeat].max()) + 1):
            held_out = codes[:, repeat] == number
            fold_train = frame[~held_out]
            fold_preprocessor = fit_preprocessor(fold_train, schema, params)
            fold_list.append(
                Fold(
                    frame_arrays(fold_train, fold_preprocessor, schema, dtype),
                    frame_arrays(frame[held_out], fold_preprocessor, schema, dtype),
                    np.flatnonzero(held_out),
                    repeat,
                )
            )
    n_folds = len(fold_list) // codes.shape[1]
    log.info(
        "cross-validation: %d folds x %d repeats over %d train+dev rows; final models refit on all",
        n_folds,
        codes.shape[1],
        len(frame),
    )
    return preprocessor, CrossValidation(development, fold_list, n_folds, codes.shape[1])
