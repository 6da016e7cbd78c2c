"""The configuration users get: sections of the repository's params.yaml, with overrides.

Params classes carry no defaults (params.yaml is the one source), so tests build params
here: the repository's values, then the keys a test changes, validated as a stage would.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from reprotrain import config
from reprotrain.config import merge

REPO_PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"
# Sub-sections of `train` by their class: optim(), schedule(), ... below.
TRAIN_PARTS = ("optim", "schedule", "early_stopping", "augment", "init_from", "mlp", "cnn")


@functools.cache
def _repository() -> dict[str, Any]:
    return config.read_params(REPO_PARAMS)


def raw(name: str) -> dict[str, Any]:
    """A fresh copy of one section's mapping as params.yaml holds it."""
    return copy.deepcopy(_repository()[name])


def _plain(value: Any) -> Any:
    """Params objects given as overrides, as the mappings params.yaml would hold."""
    if isinstance(value, config.Section):
        return value.model_dump()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def section(name: str, **overrides: Any) -> Any:
    """One section of params.yaml with `overrides` merged in, validated."""
    return config.parse_section(name, merge(raw(name), _plain(overrides)), "params.yaml")


def merged(overrides: dict[str, Any]) -> dict[str, Any]:
    """The repository's params.yaml with `overrides` merged in, not validated: what a test
    writes as params.yaml before running a stage (bad values included, on purpose)."""
    return merge(copy.deepcopy(_repository()), overrides)


def parse(name: str, mapping: Any) -> Any:
    """parse_section as a stage runs it on the repository's params.yaml in which one
    section's keys are replaced by `mapping` (a UserError for a bad value, on purpose)."""
    overrides = mapping if isinstance(mapping, dict) else {}
    if not isinstance(mapping, dict) and mapping is not None:
        return config.parse_section(name, mapping)
    return config.parse_section(name, merge(raw(name), overrides))


def nested(base: dict[str, Any], dotted: dict[str, Any]) -> dict[str, Any]:
    """`base` with dotted keys set: {"optim.lr": 0.1} sets base["optim"]["lr"]."""
    raw = copy.deepcopy(base)
    for key, value in dotted.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw


def everything(overrides: dict[str, Any]) -> dict[str, Any]:
    """Every section of params.yaml with `overrides` merged in, each validated: the
    params.yaml an end-to-end test writes into its project copy."""
    params = merge(copy.deepcopy(_repository()), _plain(overrides))
    for name, mapping in params.items():
        config.parse_section(name, mapping)
    return params


def base(**overrides: Any) -> config.BaseParams:
    return section("base", **overrides)


def features(**overrides: Any) -> config.FeaturesParams:
    return section("features", **overrides)


def split(**overrides: Any) -> config.SplitParams:
    return section("split", **overrides)


def train(**overrides: Any) -> config.TrainParams:
    return section("train", **overrides)


def tune(**overrides: Any) -> config.TuneParams:
    return section("tune", **overrides)


def evaluate(**overrides: Any) -> config.EvaluateParams:
    return section("evaluate", **overrides)


def _train_part(part: str, overrides: dict[str, Any]) -> Any:
    return getattr(train(**{part: overrides}), part)


def optim(**overrides: Any) -> config.OptimParams:
    return _train_part("optim", overrides)


def schedule(**overrides: Any) -> config.ScheduleParams:
    return _train_part("schedule", overrides)


def early_stopping(**overrides: Any) -> config.EarlyStoppingParams:
    return _train_part("early_stopping", overrides)


def augment(**overrides: Any) -> config.AugmentParams:
    return _train_part("augment", overrides)


def init_from(**overrides: Any) -> config.InitFromParams:
    """train.init_from; a mode other than none is checked against the repository's model."""
    if overrides.get("mode", "none") != "none":
        return train(model="mlp", init_from=overrides).init_from
    return _train_part("init_from", overrides)
