"""Typed, validated params: the one place that reads `params.yaml`.

Each stage loads only the sections it needs. An unknown key, a wrong type or an
out-of-range value raises a UserError naming the key, what is allowed and what was
given, before the stage writes anything.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from reprotrain.config.errors import UserError

PARAMS_FILE = Path("params.yaml")
# The folder of checkpoints for train.init_from.path (a DVC dependency of train and tune).
PRETRAINED_DIR = "pretrained"

# The models `train.model` names: torch networks and scikit-learn estimators (built in
# reprotrain.models).
TORCH_MODELS = ("mlp", "cnn", "zoo")
SKLEARN_MODELS = (
    "logistic_regression",
    "linear_regression",
    "svm",
    "random_forest",
    "hist_gradient_boosting",
)
MODEL_NAMES = TORCH_MODELS + SKLEARN_MODELS
# `train.model: auto`: the model follows the data (reprotrain.models.choice).
AUTO = "auto"
# train.init_from starts these (zoo: train.zoo.source); train.processes > 1 trains these
INIT_FROM_MODELS = ("mlp", "cnn")

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class Section(BaseModel):
    """Base for every params section: unknown keys and coercions are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- base -------------------------------------------------------------------------------


class BaseParams(Section):
    seed: Annotated[int, Field(ge=0)]
    threads: Annotated[int, Field(ge=1, le=256)]


# --- prepare ----------------------------------------------------------------------------


ColumnKind = Literal["numeric", "bool", "date", "category"]


class ImageParams(Section):
    """Image-folder sources: every image is converted to `mode` and resized to `size`."""

    size: Annotated[
        list[Annotated[int, Field(ge=1, le=1024)]], Field(min_length=2, max_length=2)
    ]  # [height, width]
    mode: Literal["grayscale", "rgb"]


class PrepareParams(Section):
    source: str
    target: str | None
    task: Literal["auto", "classification", "regression"]
    drop_missing_target: bool  # false: a missing target is an error
    column_types: dict[str, ColumnKind]  # override inferred kinds by column name
    image: ImageParams


# --- split ------------------------------------------------------------------------------


class SplitParams(Section):
    train: Fraction
    dev: Fraction
    test: Fraction
    stratify: bool
    group_column: str | None  # rows sharing a value never cross splits
    time_column: str | None  # train before dev before test along this column
    fail_on_duplicates: bool  # identical feature rows across splits: error
    # The leakage audit (data/leakage.py): each check is counted; true makes it an error.
    fail_on_near_duplicates: bool  # normalised rows / image hashes shared across splits
    fail_on_target_leak: bool  # one feature alone predicts the target on dev
    fail_on_identifiers: bool  # id-like columns that follow the target or the row order
    # k-fold cross-validation over train+dev (data/folds.py); auto: 5 folds when dev is small
    cv_folds: Literal["auto"] | int
    cv_repeats: Annotated[int, Field(ge=1, le=10)]

    @field_validator("cv_folds", mode="before")
    @classmethod
    def _auto_off_or_folds(cls, folds: Any) -> Any:
        allowed = folds == "auto" or (type(folds) is int and (folds == 0 or 2 <= folds <= 20))
        if not allowed:
            raise ValueError(f"must be auto, 0 (off) or 2 to 20 folds, got {folds!r}")
        return folds

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitParams:
        total = self.train + self.dev + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + dev + test must sum to 1, got {self.train} + {self.dev} + "
                f"{self.test} = {total:g}"
            )
        if self.group_column is not None and self.time_column is not None:
            raise ValueError(
                "group_column and time_column cannot both be set, got "
                f"group_column={self.group_column!r}, time_column={self.time_column!r}"
            )
        return self


# --- features (fit on train by the train and tune stages) -------------------------------


class FeaturesParams(Section):
    """The preprocessing fit on the training split and saved with every model."""

    exclude: list[str]  # feature columns to leave out, by name
    numeric_impute: Literal["median", "mean", "zero"]
    missing_indicator: bool  # add a 0/1 column per numeric column with gaps
    scale: Literal["none", "standard", "minmax", "robust"]
    categorical: Literal["onehot", "ordinal"]
    max_categories: Annotated[int, Field(ge=2, le=1000)]  # per text column
    min_frequency: Annotated[float, Field(ge=0, lt=1)]  # rarer (share of train): grouped
    high_cardinality_ratio: Annotated[float, Field(gt=0, le=1)]  # id-like: dropped


# --- train ------------------------------------------------------------------------------


class MLPParams(Section):
    hidden_sizes: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=0)]
    dropout: Annotated[float, Field(ge=0, lt=1)]


class CNNParams(Section):
    """Conv layers for image-shaped data (schema image_shape, e.g. digits' 1x8x8)."""

    channels: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]
    kernel_size: Annotated[int, Field(ge=1, le=7)]
    hidden: Annotated[int, Field(ge=1)]
    dropout: Annotated[float, Field(ge=0, lt=1)]


# A Hugging Face hub id read from the local cache (never downloaded): hf:<owner>/<name>.
HUB_PREFIX = "hf:"
HUB_ID = re.compile(r"^hf:[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _is_under_pretrained(path: str) -> bool:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return bool(parts) and parts[0] == PRETRAINED_DIR and ".." not in parts


class ZooParams(Section):
    """A pretrained image model from Hugging Face transformers (reprotrain/models/zoo.py).

    `source` is a model folder under `pretrained/` (config.json, preprocessor_config.json
    and model.safetensors or a state_dict .pt, as `hf download --local-dir` writes them),
    or `hf:<owner>/<name>` read from the local Hugging Face cache with the hub offline.
    """

    source: Annotated[str, Field(min_length=1)]
    weights: Literal["pretrained", "random"]  # random: the architecture only, from scratch
    freeze_epochs: Annotated[int, Field(ge=0)]  # backbone frozen for the first N epochs
    backbone_lr_factor: Annotated[float, Field(gt=0, le=1)]  # backbone lr = lr * this

    @field_validator("source")
    @classmethod
    def _local_source(cls, source: str) -> str:
        if _is_under_pretrained(source) or HUB_ID.match(source):
            return source
        raise ValueError(
            f"allowed: a model folder under {PRETRAINED_DIR}/ (e.g. {PRETRAINED_DIR}/resnet-18) "
            f"or {HUB_PREFIX}<owner>/<name> from the local Hugging Face cache (e.g. "
            f"{HUB_PREFIX}microsoft/resnet-18), got {source!r}"
        )


class LogisticRegressionParams(Section):
    C: PositiveFloat
    penalty: Literal["l2", "l1", "none"]
    max_iter: Annotated[int, Field(ge=1)]


class LinearRegressionParams(Section):
    alpha: NonNegFloat
    l1_ratio: Annotated[float, Field(ge=0, le=1)]


class SVMParams(Section):
    C: PositiveFloat
    kernel: Literal["rbf", "linear", "poly", "sigmoid"]
    gamma: Literal["scale", "auto"]


class RandomForestParams(Section):
    n_estimators: Annotated[int, Field(ge=1)]
    max_depth: Annotated[int, Field(ge=1)] | None
    min_samples_leaf: Annotated[int, Field(ge=1)]


class HistGradientBoostingParams(Section):
    learning_rate: PositiveFloat
    max_iter: Annotated[int, Field(ge=1)]
    max_leaf_nodes: Annotated[int, Field(ge=2)]
    min_samples_leaf: Annotated[int, Field(ge=1)]
    l2_regularization: NonNegFloat
    early_stopping: bool


class OptimParams(Section):
    optimizer: Literal["sgd", "adam", "adamw"]
    lr: PositiveFloat
    momentum: Annotated[float, Field(ge=0, lt=1)]
    weight_decay: NonNegFloat
    l1: NonNegFloat
    batch_size: Annotated[int, Field(ge=1)]
    epochs: Annotated[int, Field(ge=1)]
    grad_clip: PositiveFloat | None


class ScheduleParams(Section):
    """Learning-rate schedule, stepped once per epoch."""

    kind: Literal["none", "step", "cosine", "plateau"]
    step_size: Annotated[int, Field(ge=1)]  # step: epochs between decays
    gamma: Annotated[float, Field(gt=0, lt=1)]  # step and plateau: decay factor
    patience: Annotated[int, Field(ge=1)]  # plateau: epochs without dev-loss progress
    min_lr: NonNegFloat  # cosine and plateau: floor


class EarlyStoppingParams(Section):
    monitor: Literal["dev_loss", "dev_score"]
    patience: Annotated[int, Field(ge=1)]
    min_delta: NonNegFloat


class AugmentParams(Section):
    """Random batch transforms of image-shaped training data (train split only)."""

    enabled: bool
    shift: Annotated[float, Field(ge=0, le=0.5)]  # max shift, fraction of the image side
    rotate: Annotated[float, Field(ge=0, le=45)]  # max rotation in degrees
    noise: NonNegFloat  # std of Gaussian noise, in units of the pixel std
    flip: bool  # random horizontal flips (photos; not digits or text)
    crop_scale: Annotated[
        float, Field(gt=0, le=1)
    ]  # random crop of >= this share of the area, resized back; 1: off
    color_jitter: Annotated[
        float, Field(ge=0, lt=1)
    ]  # brightness, contrast, saturation x [1-j, 1+j]; 0: off


class InitFromParams(Section):
    """Start a torch model from a pretrained checkpoint (see reprotrain/models/pretrained.py).

    `path` lies in the `pretrained/` folder, which dvc.yaml lists as a dependency of train
    and tune (a static path: DVC needs no templating to read it): a checkpoint elsewhere
    would not be hashed, so replacing its bytes would not rerun them. With mode `none` the
    default, the folder itself, is unused.
    """

    mode: Literal["none", "finetune", "transfer"]
    path: Annotated[str, Field(min_length=1)]
    freeze_epochs: Annotated[int, Field(ge=0)]  # backbone frozen for the first N epochs
    backbone_lr_factor: Annotated[float, Field(gt=0, le=1)]  # backbone lr = lr * this
    mlflow_run_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None

    @field_validator("path")
    @classmethod
    def _under_pretrained(cls, path: str) -> str:
        if not _is_under_pretrained(path):
            raise ValueError(
                f"allowed: {PRETRAINED_DIR} or a relative path under it (the folder dvc.yaml "
                f"makes a dependency of train and tune; copy the checkpoint there), got {path!r}"
            )
        return path


class TrainParams(Section):
    model: str
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    device: Literal["auto", "cpu", "cuda", "mps"]
    # > 1: the torch model trains on that many processes of this machine under torchrun
    # (DistributedDataParallel), the global batch staying optim.batch_size
    processes: Annotated[int, Field(ge=1, le=1024)]
    mixed_precision: bool  # bfloat16 autocast, on CUDA only
    compile: bool  # torch.compile the network for training (torch models)
    progress: Literal["auto", "bar", "log", "off"]  # auto: bar on a terminal
    checkpoint: bool  # per-epoch checkpoints; a killed run resumes from the last
    imbalance: Literal["none", "class_weight", "oversample", "undersample"]
    mlp: MLPParams
    cnn: CNNParams
    zoo: ZooParams
    logistic_regression: LogisticRegressionParams
    linear_regression: LinearRegressionParams
    svm: SVMParams
    random_forest: RandomForestParams
    hist_gradient_boosting: HistGradientBoostingParams
    optim: OptimParams
    schedule: ScheduleParams
    early_stopping: EarlyStoppingParams
    augment: AugmentParams
    init_from: InitFromParams

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
        if repeated:
            raise ValueError(
                f"seeds must differ (a repeated seed repeats the same fit and fakes a std of "
                f"0); repeated: {repeated}"
            )
        return seeds

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        if model != AUTO and model not in MODEL_NAMES:
            raise ValueError(f"must be one of {AUTO}, {', '.join(MODEL_NAMES)}, got {model!r}")
        return model

    @model_validator(mode="after")
    def _processes_need_torch(self) -> TrainParams:
        if self.processes > 1 and self.model not in (*INIT_FROM_MODELS, AUTO):
            raise ValueError(  # zoo models under DDP are not tested yet
                f"processes > 1 (DistributedDataParallel) needs a torch model "
                f"({', '.join(INIT_FROM_MODELS)}), got processes {self.processes} with model "
                f"{self.model!r}; set train.processes: 1"
            )
        return self

    @model_validator(mode="after")
    def _init_from_needs_torch(self) -> TrainParams:
        if self.init_from.mode != "none" and self.model == "zoo":
            raise ValueError(
                f"init_from.mode {self.init_from.mode!r} starts mlp and cnn models; a zoo model "
                "starts from zoo.source (set zoo.weights: pretrained), got model 'zoo'"
            )
        if self.init_from.mode != "none" and self.model not in (*INIT_FROM_MODELS, AUTO):
            raise ValueError(
                f"init_from.mode {self.init_from.mode!r} needs a torch model "
                f"({', '.join(INIT_FROM_MODELS)}), got model {self.model!r}"
            )
        return self


# --- tune -------------------------------------------------------------------------------


class SpaceParam(Section):
    """One entry of `tune.space`: a range (low, high, log) or a list of choices. The one
    params class with defaults: each entry names only the fields its type uses."""

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
        if self.type == "int" and not (self.low.is_integer() and self.high.is_integer()):
            raise ValueError(
                f"an int parameter needs whole 'low' and 'high', got low={self.low}, "
                f"high={self.high}"
            )
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of a range (the validator made sure a range has both)."""
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter has no range")
        return self.low, self.high

    @property
    def options(self) -> list[Any]:
        """The choices of a categorical (the validator made sure there are some)."""
        if self.choices is None:
            raise ValueError(f"a {self.type} parameter has no choices")
        return self.choices


# Dev metrics a study can optimize (per task: see reprotrain/tuning/search.py METRIC_DIRECTIONS).
TuneMetric = Literal["auto", "accuracy", "macro_f1", "log_loss", "r2", "rmse", "mse", "mae"]
TUNE_METRICS = get_args(TuneMetric)
STORAGE_SCHEMES = (
    "sqlite:///",
    "journal:///",
    "postgresql://",
    "postgresql+psycopg2://",
    "postgresql+psycopg://",
)


class TuneParams(Section):
    method: Literal["grid", "random", "tpe"]
    n_trials: Annotated[int, Field(ge=1)] | None  # total over reruns and workers
    timeout: PositiveFloat | None  # seconds per invocation
    grid_points: Annotated[int, Field(ge=2)]
    metric: TuneMetric  # auto: accuracy (classification), r2 (regression)
    direction: Literal["auto", "maximize", "minimize"]
    tpe_startup_trials: Annotated[int, Field(ge=0)]  # random trials before TPE models
    pruner: Literal["none", "median", "hyperband"]
    prune_warmup_epochs: Annotated[int, Field(ge=1)]
    prune_startup_trials: Annotated[int, Field(ge=0)]
    n_jobs: Annotated[int, Field(ge=1, le=64)]
    # > 1: each trial (and the refit) trains on that many processes under torchrun (DDP)
    processes: Annotated[int, Field(ge=1, le=1024)]
    storage: str | None  # null: in memory; sqlite:///f.db, journal:///f.journal, postgresql://
    study_name: Annotated[str, Field(min_length=1, max_length=200)]
    # train.* values every trial uses, and the train.* keys searched; auto: the chosen
    # model's defaults (reprotrain.tuning.defaults)
    fixed: dict[str, Any] | Literal["auto"]
    space: dict[str, SpaceParam] | Literal["auto"]

    @model_validator(mode="after")
    def _has_budget(self) -> TuneParams:
        if self.n_trials is None and self.timeout is None and self.method != "grid":
            raise ValueError(
                f"method {self.method} needs n_trials or timeout (grid alone may run the "
                "whole grid), got neither"
            )
        return self

    @model_validator(mode="after")
    def _one_trial_per_group(self) -> TuneParams:
        if self.processes > 1 and self.n_jobs > 1:
            raise ValueError(
                f"processes {self.processes} trains each trial on a process group, one trial "
                f"at a time; allowed with it: n_jobs 1, got n_jobs {self.n_jobs}"
            )
        return self

    @field_validator("storage")
    @classmethod
    def _known_storage(cls, storage: str | None) -> str | None:
        if storage is not None and not storage.startswith(STORAGE_SCHEMES):
            raise ValueError(
                f"must be null or a URL starting with {', '.join(STORAGE_SCHEMES)}, got {storage!r}"
            )
        return storage


# --- evaluate ---------------------------------------------------------------------------


ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


class BootstrapParams(Section):
    """Percentile bootstrap of the test set, seeded from base.seed."""

    n_resamples: Annotated[int, Field(ge=100, le=100_000)]
    confidence: Annotated[float, Field(ge=0.5, lt=1)]


class RegistryParams(Section):
    """The MLflow Model Registry entry of the evaluated winner."""

    enabled: bool
    model_name: ModelName | None  # null: reprotrain-<dataset>


class EvaluateParams(Section):
    overfit_gap: Annotated[float, Field(gt=0, le=1)]
    underfit_skill: Annotated[float, Field(gt=0, le=1)]
    more_data_gain: Annotated[float, Field(ge=0, le=1)]
    calibration_bins: Annotated[int, Field(ge=2, le=100)]
    bootstrap: BootstrapParams
    registry: RegistryParams


# --- learning curve (computed by train) -------------------------------------------------


class LearningCurveParams(Section):
    """Dev score vs share of the training data; `fractions: []` turns the curve off."""

    fractions: list[Annotated[float, Field(gt=0, le=1)]]

    @model_validator(mode="after")
    def _increasing(self) -> LearningCurveParams:
        if any(b <= a for a, b in zip(self.fractions, self.fractions[1:], strict=False)):
            raise ValueError(f"fractions must be strictly increasing, got {list(self.fractions)}")
        return self


SECTIONS: dict[str, type[Section]] = {
    "base": BaseParams,
    "prepare": PrepareParams,
    "split": SplitParams,
    "features": FeaturesParams,
    "train": TrainParams,
    "tune": TuneParams,
    "evaluate": EvaluateParams,
    "learning_curve": LearningCurveParams,
}


class _Loader(yaml.SafeLoader):
    """Read params.yaml as DVC does (YAML 1.2): `1e-3` is a number, `off`/`yes` are strings.

    PyYAML follows YAML 1.1, where `1e-3` is a string and `off` is false.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what: "line 3, column 10: expected ',' or ']'" (1-based, as editors count)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or exc.__class__.__name__
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def read_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read the raw params mapping; a missing or malformed file is a UserError."""
    if not path.exists():
        raise UserError(f"{path}: file not found (run from the repository root)")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path}: not UTF-8 text (line {line}, byte {exc.start}); save it as UTF-8"
        ) from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise UserError(f"{path}: unknown section {unknown[0]!r}; allowed: {', '.join(SECTIONS)}")
    return raw


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in, mapping by mapping; a search space (`space`) is
    replaced whole, as params.yaml holds one space, not a union of two."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "space":
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def flatten(nested: dict[str, Any], sep: str = ".", lists: bool = False) -> dict[str, Any]:
    """Leaves of nested mappings keyed by their path: {'optim': {'lr': 0.1}} gives
    {'optim.lr': 0.1}; an empty mapping is a leaf; with `lists`, so is each list item
    ('sizes[0]'), else a list is one leaf."""
    flat: dict[str, Any] = {}

    def visit(name: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                visit(f"{name}{sep}{key}", item)
        elif isinstance(value, list) and value and lists:
            for index, item in enumerate(value):
                visit(f"{name}[{index}]", item)
        else:
            flat[name] = value

    for key, value in nested.items():
        visit(str(key), value)
    return flat


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
    # a union's member tags ('literal[...]', 'dict[...]') are not keys: dropped
    loc = [str(part) for part in error["loc"] if "[" not in str(part)]
    key = ".".join([section, *loc])
    given = error.get("input")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        return f"{source}: unknown key {key!r}; allowed: {', '.join(allowed)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return (
            f"{source}: {key}: missing; every key is required (the repository's params.yaml "
            "lists them all, docs/params.md explains each): add it"
        )
    if error["type"] == "value_error":
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
