"""`train.model: auto` on tabular data: fit each candidate once, keep the best flexible one
only when it beats the linear one beyond the noise (of dev, or of the out-of-fold rows)."""

from __future__ import annotations

import logging
from typing import Any

from reprotrain import metrics
from reprotrain.config import TrainParams
from reprotrain.data.schema import Schema
from reprotrain.metrics import paired
from reprotrain.models import choice
from reprotrain.training.validation import Validation

log = logging.getLogger(__name__)


def with_model(params: TrainParams, model: str) -> TrainParams:
    """Train params naming one concrete model (what every fit, save and log sees)."""
    return params.model_copy(update={"model": model})


# The paired bootstrap of the model choice on dev (train reads no evaluate params).
DEV_RESAMPLES, DEV_CONFIDENCE = 1000, 0.95
# What the paired comparison resamples, by validation method.
UNSEEN = {"holdout": "on dev", "cross-validation": "on out-of-fold predictions"}


def choose_model(
    params: TrainParams, schema: Schema, validation: Validation
) -> tuple[TrainParams, dict[str, Any]]:
    """The train params with `model` resolved, and how it was chosen (for train.json).

    Several candidates (auto on tabular data: gradient boosting, random forest and SVM on
    small tables, then the scaled linear model): each is fitted with the first seed and
    predicts rows it did not see (dev, or out of fold under cross-validation). The
    best-scoring flexible model wins only when it beats the linear one beyond the noise:
    the paired bootstrap interval of its primary-score difference (the same resamples for
    both) lies wholly on the better side of 0. Otherwise the linear model, the simpler and
    cheaper, is kept.
    """
    names = choice.candidates(params.model, schema, validation.fit_rows)
    requested = params.model
    if len(names) == 1:
        return with_model(params, names[0]), {"requested": requested, "chosen": names[0]}
    primary, seed = metrics.PRIMARY[schema.task], params.seeds[0]
    fitted = {name: validation.fit(with_model(params, name), schema, seed) for name in names}
    predictions = {name: validation.dev_prediction(run) for name, run in fitted.items()}
    # scored on the very predictions the comparison resamples (under cross-validation:
    # all out-of-fold rows pooled, not the mean of the fold scores)
    dev_scores = {
        name: metrics.scores(schema.task, validation.y_dev, *prediction)[primary]
        for name, prediction in predictions.items()
    }
    simple = names[-1]
    flexible = max(names[:-1], key=lambda name: dev_scores[name])  # ties: the earlier
    difference = paired.differences(
        schema.task,
        validation.y_dev,
        predictions[flexible],
        predictions[simple],
        DEV_RESAMPLES,
        DEV_CONFIDENCE,
        seed,
    )[primary]
    chosen = flexible if difference["verdict"] == "better" else simple
    log.info(
        "train.model auto (tabular data): dev %s %s; %s − %s %+.4f [%+.4f, %+.4f] (paired "
        "bootstrap, %s): %s: chose %s",
        primary,
        ", ".join(f"{name} {score:.4f}" for name, score in dev_scores.items()),
        flexible,
        simple,
        difference["difference"],
        difference["ci_low"],
        difference["ci_high"],
        UNSEEN[validation.method],
        difference["verdict"],
        chosen,
    )
    return with_model(params, chosen), {
        "requested": requested,
        "chosen": chosen,
        "dev_scores": dev_scores,
        "dev_comparison": {
            "models": [flexible, simple],
            "on": UNSEEN[validation.method],
            **difference,
        },
        "seed": seed,
    }
