"""Typed, validated params: the one place that reads `params.yaml`.

Each stage loads only the sections it needs. An unknown key, a wrong type or an
out-of-range value raises a UserError naming the key, what is allowed and what was
given, before the stage writes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from stages.errors import UserError

PARAMS_FILE = Path("params.yaml")

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class Section(BaseModel):
    """Base for every params section: unknown keys and coercions are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- base -------------------------------------------------------------------------------


class BaseParams(Section):
    seed: Annotated[int, Field(ge=0)] = 42
    threads: Annotated[int, Field(ge=1, le=256)] = 1


# --- prepare ----------------------------------------------------------------------------


class PrepareParams(Section):
    source: str = "sklearn:digits"
    target: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"


# --- split ------------------------------------------------------------------------------


class SplitParams(Section):
    train: Fraction = 0.6
    dev: Fraction = 0.2
    test: Fraction = 0.2
    stratify: bool = True

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitParams:
        total = self.train + self.dev + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + dev + test must sum to 1, got {self.train} + {self.dev} + "
                f"{self.test} = {total:g}"
            )
        return self


# --- train ------------------------------------------------------------------------------


class MLPParams(Section):
    hidden_sizes: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=0)] = [128]
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


class LogisticRegressionParams(Section):
    C: PositiveFloat = 1.0
    penalty: Literal["l2", "l1", "none"] = "l2"
    max_iter: Annotated[int, Field(ge=1)] = 1000


class LinearRegressionParams(Section):
    alpha: NonNegFloat = 0.0


class OptimParams(Section):
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: PositiveFloat = 1e-3
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    weight_decay: NonNegFloat = 0.0
    l1: NonNegFloat = 0.0
    batch_size: Annotated[int, Field(ge=1)] = 64
    epochs: Annotated[int, Field(ge=1)] = 100
    grad_clip: PositiveFloat | None = None


class EarlyStoppingParams(Section):
    monitor: Literal["dev_loss", "dev_score"] = "dev_loss"
    patience: Annotated[int, Field(ge=1)] = 10
    min_delta: NonNegFloat = 0.0


class TrainParams(Section):
    model: str = "mlp"
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = [0]
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    mlp: MLPParams = MLPParams()
    logistic_regression: LogisticRegressionParams = LogisticRegressionParams()
    linear_regression: LinearRegressionParams = LinearRegressionParams()
    optim: OptimParams = OptimParams()
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        from stages.models import MODEL_NAMES  # late: models import torch lazily

        if model not in MODEL_NAMES:
            raise ValueError(f"must be one of {', '.join(MODEL_NAMES)}, got {model!r}")
        return model


# --- tune -------------------------------------------------------------------------------


class SpaceParam(Section):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> SpaceParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"'low' must be <= 'high', got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled parameter needs low > 0, got low={self.low}")
        return self


class TuneParams(Section):
    method: Literal["grid", "random", "tpe"] = "tpe"
    n_trials: Annotated[int, Field(ge=1)] = 20
    timeout: PositiveFloat | None = None
    grid_points: Annotated[int, Field(ge=2)] = 3
    space: dict[str, SpaceParam] = {}


# --- evaluate ---------------------------------------------------------------------------


class EvaluateParams(Section):
    overfit_gap: Annotated[float, Field(gt=0, le=1)] = 0.05
    underfit_skill: Annotated[float, Field(gt=0, le=1)] = 0.8


SECTIONS: dict[str, type[Section]] = {
    "base": BaseParams,
    "prepare": PrepareParams,
    "split": SplitParams,
    "train": TrainParams,
    "tune": TuneParams,
    "evaluate": EvaluateParams,
}


def read_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read the raw params mapping; a missing or malformed file is a UserError."""
    if not path.exists():
        raise UserError(f"{path}: file not found (run from the repository root)")
    try:
        with path.open() as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise UserError(f"{path}: unknown section {unknown[0]!r}; allowed: {', '.join(SECTIONS)}")
    return raw


def parse_section(name: str, raw: Any, source: str = "params.yaml") -> Section:
    """Validate one section's raw mapping into its typed object."""
    model = SECTIONS[name]
    if raw is None:
        raw = {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise UserError(_one_line(exc, model, name, source)) from None


def load(*names: str, path: Path = PARAMS_FILE) -> tuple[Section, ...]:
    """Load and validate the named sections of params.yaml, in order."""
    raw = read_params(path)
    return tuple(parse_section(name, raw.get(name), str(path)) for name in names)


def leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every leaf field of a params model (for tuning spaces)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += leaf_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _one_line(exc: ValidationError, model: type[BaseModel], section: str, source: str) -> str:
    """The first validation error as 'file: key: what is allowed, got what'."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"]]
    key = ".".join([section, *loc])
    given = error.get("input")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        return f"{source}: unknown key {key!r}; allowed: {', '.join(allowed)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error" or error["type"] == "missing":
        return f"{source}: {key}: {message}"
    return f"{source}: {key}: {message}, got {given!r}"


def _allowed_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    """Field names allowed at `path` inside `model` (best effort for nested maps)."""
    for part in path:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            if model is TuneParams and part == "space":
                model = SpaceParam
                continue
            if model is SpaceParam:
                continue
            return []
        model = annotation
    return list(model.model_fields)
