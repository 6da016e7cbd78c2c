"""Search space from params -> Optuna study. Knows nothing of files or MLflow.

Running trials against the study (budget, locking, heartbeats) lives in tuning/trials.py.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import optuna

from reprotrain import config, metrics
from reprotrain.config import SpaceParam, TrainParams, TuneParams
from reprotrain.config.errors import UserError
from reprotrain.config.secrets import redact
from reprotrain.training import fitting
from reprotrain.tuning import defaults
from reprotrain.tuning.defaults import fixed_of, space_of
from reprotrain.tuning.journal import HeartbeatJournalStorage

log = logging.getLogger(__name__)

SCALARS = (str, int, float, bool, type(None))
# train keys tune never reads: its trials train in its own process
NOT_READ_BY_TUNE = ("processes",)
# Run settings, not hyperparameters: tuning them would not change what the model learns.
NOT_TUNABLE = (
    *NOT_READ_BY_TUNE,
    "seeds",
    "device",
    "progress",
    "checkpoint",
    "mixed_precision",
    "compile",
    "init_from.mode",
    "init_from.path",
    "init_from.mlflow_run_id",
)
Direction = Literal["maximize", "minimize"]
METRIC_DIRECTIONS: dict[str, dict[str, Direction]] = {
    "classification": {"accuracy": "maximize", "macro_f1": "maximize", "log_loss": "minimize"},
    "regression": {"r2": "maximize", "rmse": "minimize", "mse": "minimize", "mae": "minimize"},
}
HEARTBEAT_S = 10  # a running trial's heartbeat period on a database storage
GRACE_S = 60  # silence after which a trial's worker is presumed dead and the trial retried
MAX_RETRY = 3  # times one lost trial is retried
STORAGE_ATTEMPTS = 5  # tries to open a database storage while other workers create it
SQLITE, JOURNAL = "sqlite:///", "journal:///"  # file storages: the path follows


@dataclass(frozen=True)
class Objective:
    """The dev metric a study optimizes and which way."""

    metric: str
    direction: Direction


# --- the space ----------------------------------------------------------------------------


def tunable_keys() -> list[str]:
    return [key for key in config.leaf_keys(TrainParams) if key not in NOT_TUNABLE]


def train_keys_read(params: TuneParams, train_params: TrainParams) -> list[str]:
    """The train.* keys a search takes from train's params, for a concrete
    `train_params.model` (both as `runner.search_params` returns them): all but those
    `tune.space` searches and `tune.fixed` sets, and but those no model a trial builds
    reads (another model's section; the torch sections for a scikit-learn model). dvc.yaml
    lists these for tune, so an experiment changing only a searched key (say optim.lr)
    reruns train, not tune."""
    searched, fixed = space_of(params), fixed_of(params)
    models = {train_params.model}
    if "model" in searched:
        models |= set(searched["model"].choices or [])
    set_by_tune = set(searched) | set(fixed) | set(NOT_READ_BY_TUNE)
    return [
        f"train.{key}"
        for key in config.leaf_keys(TrainParams)
        if key not in set_by_tune and any(defaults.reads(model, key) for model in models)
    ]


def trial_params(train_params: TrainParams, params: TuneParams) -> TrainParams:
    """The train params every trial starts from: train's, with `tune.fixed` applied."""
    _check_keys("fixed", fixed_of(params))
    for key, value in fixed_of(params).items():
        if key in space_of(params):
            raise UserError(
                f"params.yaml: tune.fixed: {key!r} is also in tune.space; a key is either "
                "fixed or searched, got both"
            )
        _check_value("fixed", key, value, train_params)
    try:
        return apply(train_params, fixed_of(params))
    except UserError as exc:
        raise UserError(
            f"params.yaml: tune.fixed: values do not fit together ({_reason(exc)})"
        ) from None


def validate_space(space: dict[str, SpaceParam], train_params: TrainParams) -> None:
    """Every key is a train hyperparameter and every value the space can give is valid."""
    if not space:
        raise UserError("params.yaml: tune.space: needs at least one hyperparameter, got none")
    _check_keys("space", space)
    for key, spec in space.items():
        for value in _extremes(spec):
            _check_value("space", key, value, train_params)


def without_pretrained_layers(params: TuneParams, train_params: TrainParams) -> TuneParams:
    """Trials that start from train.init_from keep the checkpoint's layer sizes: space keys
    that would change them (e.g. cnn.channels) leave the search, with a warning."""
    from reprotrain.models.pretrained import ARCHITECTURE_KEYS

    if train_params.init_from.mode == "none":
        return params
    fixed = [key for key in space_of(params) if key in ARCHITECTURE_KEYS]
    if not fixed:
        return params
    space = {key: spec for key, spec in space_of(params).items() if key not in fixed}
    if not space:
        raise UserError(
            "params.yaml: tune.space: needs a key that train.init_from leaves free (e.g. "
            f"optim.lr); the checkpoint fixes the layer sizes, got only {', '.join(fixed)}"
        )
    log.warning(
        "tune.space: not searching %s: train.init_from (%s) fixes the layer sizes",
        ", ".join(fixed),
        train_params.init_from.path,
    )
    return params.model_copy(update={"space": space})


def _check_keys(section: str, entries: dict[str, Any]) -> None:
    valid = tunable_keys()
    for key in entries:
        if key not in valid:
            raise UserError(
                f"params.yaml: tune.{section}: {key!r} is not a train hyperparameter; "
                f"valid: {', '.join(valid)}"
            )


def _check_value(section: str, key: str, value: Any, train_params: TrainParams) -> None:
    try:
        apply(train_params, {key: value})
    except UserError as exc:
        raise UserError(
            f"params.yaml: tune.{section}.{key}: value {value!r} is not valid for "
            f"train.{key} ({_reason(exc)})"
        ) from None


def _extremes(spec: SpaceParam) -> list[Any]:
    """The values that prove a space entry valid: every choice, or both ends of a range."""
    if spec.type == "categorical":
        return list(spec.options)
    low, high = spec.bounds
    return [int(low), int(high)] if spec.type == "int" else [low, high]


def _reason(exc: UserError) -> str:
    """The part of a params error after 'source: key: '."""
    return str(exc).split(": ", 2)[-1]


def apply(params: TrainParams, overrides: dict[str, Any]) -> TrainParams:
    """Train params with dotted keys replaced, validated again as a whole."""
    raw = params.model_dump()
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = value
    return cast(TrainParams, config.parse_section("train", raw, source="tune.space"))


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
        value: Any
        if spec.type == "float":
            value = trial.suggest_float(name, *spec.bounds, log=spec.log)
        elif spec.type == "int":
            low, high = spec.bounds
            value = trial.suggest_int(name, int(low), int(high), log=spec.log)
        else:
            value = trial.suggest_categorical(name, _encode(spec.options))
        values[name] = _decode(value, spec)
    return values


def grid(space: dict[str, SpaceParam], points: int) -> dict[str, list[Any]]:
    """The grid for GridSampler: choices as given, ranges as `points` spaced values."""
    result: dict[str, list[Any]] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            result[name] = _encode(spec.options)
            continue
        spaced = np.geomspace if spec.log else np.linspace
        values = spaced(*spec.bounds, points)
        if spec.type == "int":
            result[name] = sorted({int(round(value)) for value in values})
        else:
            result[name] = [float(value) for value in values]
    return result


def grid_size(space: dict[str, SpaceParam], points: int) -> int:
    return math.prod(len(values) for values in grid(space, points).values())


def trial_budget(params: TuneParams) -> int | None:
    """Total trials of the study: n_trials, capped by the grid's size under method grid."""
    if params.method != "grid":
        return params.n_trials
    size = grid_size(space_of(params), params.grid_points)
    return size if params.n_trials is None else min(params.n_trials, size)


def decode_params(values: dict[str, Any], space: dict[str, SpaceParam]) -> dict[str, Any]:
    """A trial's stored params back to what the train params expect."""
    return {name: _decode(value, space[name]) for name, value in values.items()}


# --- the objective ------------------------------------------------------------------------


def resolve_objective(params: TuneParams, task: str) -> Objective:
    """The dev metric for this task and its direction; an explicit direction must agree."""
    allowed = METRIC_DIRECTIONS[task]
    metric = metrics.PRIMARY[task] if params.metric == "auto" else params.metric
    if metric not in allowed:
        raise UserError(
            f"params.yaml: tune.metric: for a {task} task one of auto, {', '.join(allowed)}, "
            f"got {metric!r}"
        )
    natural = allowed[metric]
    if params.direction not in ("auto", natural):
        raise UserError(
            f"params.yaml: tune.direction: {metric} is to {natural}; allowed: auto, {natural}, "
            f"got {params.direction!r}"
        )
    return Objective(metric, natural)


def epoch_value(row: dict[str, float], objective: Objective, task: str) -> float:
    """The per-epoch dev value reported to the pruner.

    The epoch rows carry the task's primary score and its loss. Metrics without a
    per-epoch value (macro_f1, mae) report the one of those two that runs the same way:
    pruners compare trials at equal epochs only, so a consistent proxy suffices.
    """
    if objective.metric == metrics.PRIMARY[task]:
        return row["dev_score"]
    if objective.metric == metrics.LOSS[task]:
        return row["dev_loss"]
    if objective.metric == "rmse":
        return math.sqrt(row["dev_loss"])
    return row["dev_score"] if objective.direction == "maximize" else row["dev_loss"]


# --- the study ----------------------------------------------------------------------------


class BudgetedGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its `study.stop()` once the grid is spent.

    `Study.stop` works only inside `Study.optimize`; trials here are claimed with
    `study.ask()` (tuning/trials.py), and the budget, the grid's size, ends the search.
    """

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


def make_sampler(
    params: TuneParams, seed: int, parallel: bool = False
) -> optuna.samplers.BaseSampler:
    if params.method == "grid":
        return BudgetedGridSampler(grid(space_of(params), params.grid_points), seed=seed)
    if params.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # constant_liar is experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: running trials count as bad ones, so parallel trials spread out.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=params.tpe_startup_trials, constant_liar=parallel
        )


def make_pruner(
    params: TuneParams, max_epochs: int, warmup: int | None = None
) -> optuna.pruners.BasePruner:
    """Prunes on per-step dev values (epochs, or folds under cross-validation, `warmup`
    steps first: tune.prune_warmup_epochs when None); trials of models without epochs
    and without folds are never pruned."""
    warmup = params.prune_warmup_epochs if warmup is None else warmup
    if params.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=params.prune_startup_trials, n_warmup_steps=warmup
        )
    if params.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=warmup, max_resource=max(max_epochs, warmup)
        )
    return optuna.pruners.NopPruner()


def max_epochs(params: TuneParams, train_params: TrainParams) -> int:
    """The most epochs a trial can run: train.optim.epochs or the top of its range."""
    spec = space_of(params).get("optim.epochs")
    if spec is None:
        return train_params.optim.epochs
    if spec.type == "categorical":
        return max(int(choice) for choice in spec.options)
    return int(spec.bounds[1])


def storage_url(url: str, root: Path | None = None) -> str:
    """The storage URL as SQLAlchemy (or the journal file storage) should get it.

    A relative SQLite or journal path is resolved against the workspace (DVC_ROOT, else the
    cwd): `dvc exp run --temp` runs in a copy, and the study must outlive it so that a rerun
    continues it. `postgresql://` names the installed driver, psycopg2 (SQLAlchemy 2.1
    would pick psycopg 3).
    """
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    for prefix in (SQLITE, JOURNAL):
        if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
            base = root or Path(os.environ.get("DVC_ROOT") or ".")
            return prefix + str((base / url[len(prefix) :]).resolve())
    return url


def open_storage(
    url: str | None, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S
) -> optuna.storages.BaseStorage | None:
    """None (in memory), a database storage or a journal file, with heartbeats and
    lost-trial retries."""
    if url is None:
        return None
    url = storage_url(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith(JOURNAL):
        check_folder(Path(url[len(JOURNAL) :]), JOURNAL, "journal:///tune.journal")
    elif url.startswith(SQLITE):
        check_folder(Path(url[len(SQLITE) :]), SQLITE, "sqlite:///tune.db")
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for other writers
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            if url.startswith(JOURNAL):
                path = Path(url[len(JOURNAL) :])
                return HeartbeatJournalStorage(path, heartbeat_s, grace_s, MAX_RETRY)
            return _rdb_storage(url, engine_kwargs, heartbeat_s, grace_s)
        except Exception as exc:  # noqa: BLE001 - any driver error means the URL is unusable
            message = str(exc).strip()
            # Workers starting together race to create the schema: the loser retries.
            if "already exists" in message and attempt < STORAGE_ATTEMPTS - 1:
                time.sleep(0.5 * (attempt + 1))
                continue
            first_line = message.splitlines()[0] if message else ""
            raise UserError(
                f"params.yaml: tune.storage: cannot open {redact(url)} "
                f"({type(exc).__name__}: {first_line})"
            ) from None
    raise AssertionError("unreachable")


def check_folder(path: Path, prefix: str, example: str) -> None:
    """A SQLite study's or journal's folder must exist and be writable: never created on
    the fly (a typo would make folders, as root even at the filesystem root)."""
    folder = path.parent
    problem = None
    if not folder.exists():
        problem = f"folder {folder} does not exist (create it: mkdir -p {folder})"
    elif not folder.is_dir():
        problem = f"{folder} is not a folder"
    elif not os.access(folder, os.W_OK):
        problem = f"folder {folder} is not writable"
    if problem:
        kind = "a journal" if prefix == JOURNAL else "a database"
        raise UserError(
            f"params.yaml: tune.storage: {prefix}{path}: {problem}; allowed: {kind} "
            f"file in an existing, writable folder, e.g. {example}"
        )


def _rdb_storage(
    url: str, engine_kwargs: dict[str, Any], heartbeat_s: int, grace_s: int
) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():  # heartbeats are experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_s,
            grace_period=grace_s,
            heartbeat_stale_trial_callback=retry,
        )


def open_study(
    params: TuneParams,
    objective: Objective,
    seed: int,
    storage: optuna.storages.BaseStorage | None,
    max_epochs: int,
    warmup: int | None = None,
) -> optuna.Study:
    """The study named in params: created, or loaded when the storage already holds it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parallel = params.n_jobs > 1 or storage is not None
    return optuna.create_study(
        study_name=params.study_name,
        storage=storage,
        sampler=make_sampler(params, seed, parallel),
        pruner=make_pruner(params, max_epochs, warmup),
        direction=objective.direction,
        load_if_exists=True,
    )


def fingerprint(
    params: TuneParams,
    train_params: TrainParams,
    objective: Objective,
    arrays: tuple[np.ndarray, ...],
) -> str:
    """What a study's trials depend on: space, method, objective, train params and data.

    Budget, timeout, parallelism and pruning may change between runs of one study; these
    may not, or trials of different searches would mix.
    """
    recipe = {
        "space": {key: spec.model_dump() for key, spec in space_of(params).items()},
        "method": params.method,
        "grid_points": params.grid_points,
        "objective": [objective.metric, objective.direction],
        "train": train_params.model_dump(),
    }
    return fitting.fingerprint(recipe, arrays)[:16]


def check_fingerprint(study: optuna.Study, expected: str, claim: bool) -> None:
    """A study holds trials of one search only: refuse to mix in a different one."""
    found = study.user_attrs.get("fingerprint")
    if found is None and claim:
        study.set_user_attr("fingerprint", expected)
        return
    if found is None:
        raise UserError(
            f"params.yaml: tune.study_name: study {study.study_name!r} has not been started; "
            "start the coordinator (`dvc repro` or `python -m stages.tune`) first"
        )
    if found != expected:
        raise UserError(
            f"params.yaml: tune.study_name: study {study.study_name!r} in tune.storage was "
            "made with other train/tune params or data; use a new tune.study_name (or the "
            f"same params and data), got fingerprint {expected} for the study's {found}"
        )


# --- results ------------------------------------------------------------------------------


def state_name(trial: optuna.trial.FrozenTrial) -> str:
    return {"FAIL": "failed"}.get(trial.state.name, trial.state.name.lower())


def trials_table(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, dev score, epochs run, the dev value of its last
    epoch (where a pruned trial stopped) and params.

    Only complete trials have a dev score. No timings, so the bytes are stable from run to run.
    """
    rows = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        epochs = trial.intermediate_values
        rows.append(
            {
                "trial": trial.number,
                "state": state_name(trial),
                "dev_score": trial.value if complete else None,
                "epochs": len(epochs) or None,
                "last_epoch_dev_score": epochs[max(epochs)] if epochs else None,
                **trial.params,
            }
        )
    return rows


def history_table(trials: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """The complete trials of `trials_table` rows with the best dev score so far
    (`direction` "maximize" or "minimize"): pruned and failed trials have no dev score,
    and a plot of the full table would draw their blanks as zeros."""
    pick = max if direction == "maximize" else min
    rows: list[dict[str, Any]] = []
    for row in trials:
        if row["state"] != "complete":
            continue
        best = row["dev_score"] if not rows else pick(rows[-1]["best_so_far"], row["dev_score"])
        rows.append({"trial": row["trial"], "dev_score": row["dev_score"], "best_so_far": best})
    return rows


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts = {"complete": 0, "pruned": 0, "failed": 0}
    for trial in study.get_trials(deepcopy=False):
        counts[state_name(trial)] = counts.get(state_name(trial), 0) + 1
    return counts


def first_error(study: optuna.Study) -> str:
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if "error" in trial.user_attrs:
            return f"trial {trial.number}: {trial.user_attrs['error']}"
    return "no error recorded"


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best complete trial; a UserError when none completed."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        n_trials = len(study.get_trials(deepcopy=False))
        raise UserError(
            f"tune: none of the study's {n_trials} trials completed; first error: "
            f"{first_error(study)}"
        )
    return study.best_trial


def param_importances(study: optuna.Study, seed: int) -> tuple[dict[str, float] | None, str]:
    """fANOVA importance of each param, or None and the reason it cannot be computed."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    names = {name for trial in complete for name in trial.params}
    if len(complete) < 2:
        return None, f"needs at least 2 complete trials, got {len(complete)}"
    if len(names) < 2:
        return None, f"needs at least 2 tuned params, got {len(names)}"
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as exc:  # e.g. every complete trial has one value
        return None, str(exc)
    return {name: float(value) for name, value in importances.items()}, "ok"
