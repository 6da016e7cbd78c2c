"""`train.model: auto` on tabular data: fit each candidate once, keep the best on dev."""

from __future__ import annotations

import logging
from typing import Any

from reprotrain import metrics
from reprotrain.config import TrainParams
from reprotrain.data.schema import Schema
from reprotrain.models import choice
from reprotrain.training.fitting import Arrays, fit_and_score

log = logging.getLogger(__name__)


def with_model(params: TrainParams, model: str) -> TrainParams:
    """Train params naming one concrete model (what every fit, save and log sees)."""
    return params.model_copy(update={"model": model})


def choose_model(
    params: TrainParams, schema: Schema, train: Arrays, dev: Arrays
) -> tuple[TrainParams, dict[str, Any]]:
    """The train params with `model` resolved, and how it was chosen (for train.json).

    Several candidates (auto on tabular data): each is fitted with the first seed and
    scored on dev; the best primary dev score wins, a tie goes to the later candidate
    (the linear model: simpler and cheaper).
    """
    names = choice.candidates(params.model, schema)
    requested = params.model
    if len(names) == 1:
        return with_model(params, names[0]), {"requested": requested, "chosen": names[0]}
    primary, seed = metrics.PRIMARY[schema.task], params.seeds[0]
    dev_scores = {
        name: fit_and_score(with_model(params, name), schema, seed, train, dev).dev_scores[primary]
        for name in names
    }
    chosen = max(reversed(names), key=lambda name: dev_scores[name])
    log.info(
        "train.model auto (tabular data): dev %s %s: chose %s",
        primary,
        ", ".join(f"{name} {score:.4f}" for name, score in dev_scores.items()),
        chosen,
    )
    return with_model(params, chosen), {
        "requested": requested,
        "chosen": chosen,
        "dev_scores": dev_scores,
        "seed": seed,
    }
