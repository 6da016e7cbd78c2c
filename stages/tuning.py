"""Search space from params -> Optuna study. Knows nothing of files or MLflow."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import optuna

from stages import config
from stages.config import SpaceParam, TrainParams, TuneParams
from stages.errors import UserError

SCALARS = (str, int, float, bool, type(None))


def validate_space(space: dict[str, SpaceParam]) -> None:
    """Every key must be a train hyperparameter."""
    valid = config.leaf_keys(TrainParams)
    for key in space:
        if key not in valid:
            raise UserError(
                f"params.yaml: tune.space: {key!r} is not a train hyperparameter; "
                f"valid: {', '.join(valid)}"
            )


def apply(params: TrainParams, overrides: dict[str, Any]) -> TrainParams:
    """Train params with dotted keys replaced, validated again as a whole."""
    raw = params.model_dump()
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config.parse_section("train", raw, source="tune.space")


def _encode(choices: list[Any]) -> list[Any]:
    """Optuna stores scalars only: lists (e.g. layer sizes) travel as JSON strings."""
    if all(isinstance(choice, SCALARS) for choice in choices):
        return choices
    return [json.dumps(choice) for choice in choices]


def _decode(value: Any, spec: SpaceParam) -> Any:
    if spec.choices is not None and not all(isinstance(c, SCALARS) for c in spec.choices):
        return json.loads(value)
    return value


def suggest(trial: optuna.Trial, space: dict[str, SpaceParam]) -> dict[str, Any]:
    """One value per space entry, decoded to what the train params expect."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "float":
            value = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
        elif spec.type == "int":
            value = trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
        else:
            value = trial.suggest_categorical(name, _encode(spec.choices))
        values[name] = _decode(value, spec)
    return values


def grid(space: dict[str, SpaceParam], points: int) -> dict[str, list[Any]]:
    """The grid for GridSampler: choices as given, ranges as `points` spaced values."""
    import numpy as np

    result: dict[str, list[Any]] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            result[name] = _encode(spec.choices)
            continue
        spaced = np.geomspace if spec.log else np.linspace
        values = spaced(spec.low, spec.high, points)
        if spec.type == "int":
            result[name] = sorted({int(round(value)) for value in values})
        else:
            result[name] = [float(value) for value in values]
    return result


def make_sampler(params: TuneParams, seed: int) -> optuna.samplers.BaseSampler:
    if params.method == "grid":
        return optuna.samplers.GridSampler(grid(params.space, params.grid_points), seed=seed)
    if params.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def create_study(params: TuneParams, seed: int, name: str = "reprotrain-tune") -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name, direction="maximize", sampler=make_sampler(params, seed)
    )


def run_study(
    study: optuna.Study, objective: Callable[[optuna.Trial], float], params: TuneParams
) -> None:
    study.optimize(objective, n_trials=params.n_trials, timeout=params.timeout)


def trials_table(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, dev score and params (no timings: stable bytes)."""
    return [
        {
            "trial": trial.number,
            "state": trial.state.name.lower(),
            "dev_score": trial.value,
            **trial.params,
        }
        for trial in study.trials
    ]


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.trials:
        state = trial.state.name.lower()
        counts[state] = counts.get(state, 0) + 1
    return counts


def decode_params(values: dict[str, Any], space: dict[str, SpaceParam]) -> dict[str, Any]:
    """A trial's stored params back to what the train params expect."""
    return {name: _decode(value, space[name]) for name, value in values.items()}
