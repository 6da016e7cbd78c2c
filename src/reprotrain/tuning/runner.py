"""One search on dev: the objective every trial runs, the coordinator's run of the study
(trials, then the best configuration refit) and a worker's (trials only).

Nothing here talks to MLflow: a `TrialObserver` (tracking's `TrialRuns`) hears when each
trial starts and how it ends.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import optuna

from reprotrain.config import BaseParams, TrainParams, TuneParams, wiring
from reprotrain.config.errors import UserError
from reprotrain.config.secrets import redact
from reprotrain.data.schema import Schema
from reprotrain.models import choice
from reprotrain.training.fitting import Fitted
from reprotrain.training.validation import CrossValidation, Validation
from reprotrain.tuning import defaults, group
from reprotrain.tuning import search as space
from reprotrain.tuning.trials import Budget, StudyLock, next_action, run_trials

log = logging.getLogger(__name__)

# Study attribute: the coordinator's run while it runs (workers nest their trials under it).
# The stored name predates this module; shared studies keep it.
PARENT_ATTR = "mlflow_parent_run_id"

# Under cross-validation a trial reports the running mean of its fold scores after each
# fold; the pruner may stop it once this many folds are done.
CV_PRUNE_WARMUP_FOLDS = 2


class TrialObserver(Protocol):
    """Told of every trial: its start (with the sampled overrides), each epoch, its end."""

    def started(self, trial: optuna.Trial, overrides: dict[str, Any]) -> None: ...

    def epoch(self, trial: optuna.Trial, row: dict[str, float]) -> None: ...

    def ended(
        self,
        trial: optuna.Trial,
        state: str,
        history: list[dict[str, float]],
        final: dict[str, float],
        error: str | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class Search:
    """What the search needs: params, the data and the objective."""

    base: BaseParams
    train_params: TrainParams
    params: TuneParams
    schema: Schema
    validation: Validation  # the dev split, or cross-validation folds (small data)
    objective: space.Objective

    @property
    def seed(self) -> int:
        return self.train_params.seeds[0]

    @property
    def budget(self) -> Budget:
        return Budget(space.trial_budget(self.params), self.params.timeout)

    def fit(self, overrides: dict[str, Any], on_epoch: Any = None, label: str = "") -> Fitted:
        train_params = space.apply(self.train_params, overrides)
        return self.validation.fit(
            train_params, self.schema, self.seed, on_epoch=on_epoch, label=label
        )

    def logged_params(self) -> dict[str, Any]:
        """The params of the stage run (the storage URL without its password)."""
        tune = self.params.model_dump() | {"storage": redact(self.params.storage or "memory")}
        return {
            "base": self.base.model_dump(),
            "train": self.train_params.model_dump(),
            "tune": tune,
        }


def search_params(train_params: TrainParams, params: TuneParams) -> tuple[TrainParams, TuneParams]:
    """What every trial starts from (`tune.fixed` applied) and the space actually searched,
    every value of it checked. Reads no file: params errors come before any data is read.
    """
    params = defaults.resolve(params, train_params.model)  # auto: the model's space and fixed
    train_params = space.trial_params(train_params, params)
    params = space.without_pretrained_layers(params, train_params)
    space.validate_space(space.space_of(params), train_params)
    return train_params, params


def check_before_data(train_params: TrainParams, params: TuneParams) -> None:
    """Before any data is read: the search params of every model tune may search (under
    `train.model: auto`, the CNN or gradient boosting: at least one must accept them), and
    that dvc.yaml lists for tune every train key any of these searches reads, else a
    change of that key would not rerun tune."""
    keys: set[str] = set()
    errors: list[UserError] = []
    for model in choice.searchable(train_params.model):
        try:
            resolved = search_params(train_params.model_copy(update={"model": model}), params)
        except UserError as exc:
            errors.append(exc)
            continue
        keys |= set(space.train_keys_read(resolved[1], resolved[0]))
    if errors and not keys:
        raise errors[0]
    wiring.check_listed("tune", sorted(keys), "tune.space and tune.fixed do not set it")


def models_searched(train_params: TrainParams, params: TuneParams) -> list[str]:
    """Every model a trial may build: train.model, or the choices of a searched `model`."""
    spec = space.space_of(params).get("model")
    return [str(name) for name in spec.options] if spec is not None else [train_params.model]


def make_search(
    base: BaseParams,
    train_params: TrainParams,
    params: TuneParams,
    schema: Schema,
    validation: Validation,
) -> Search:
    """The search over the data; `train_params` and `params` as `search_params` returns them."""
    objective = space.resolve_objective(params, schema.task)
    return Search(base, train_params, params, schema, validation, objective)


def open_search_study(search: Search, storage: Any) -> tuple[optuna.Study, str]:
    """The study (new, or resumed from `storage`) and the fingerprint its trials must share."""
    steps = space.max_epochs(search.params, search.train_params)
    warmup = search.params.prune_warmup_epochs
    if isinstance(search.validation, CrossValidation):  # a trial reports after each fold
        steps, warmup = len(search.validation.folds), CV_PRUNE_WARMUP_FOLDS
    study = space.open_study(
        search.params, search.objective, search.base.seed, storage, steps, warmup
    )
    fingerprint = space.fingerprint(
        search.params, search.train_params, search.objective, search.validation.arrays()
    )
    return study, fingerprint


def make_objective(search: Search, observer: TrialObserver) -> Callable[[optuna.Trial], float]:
    """trial -> dev metric of the trial's configuration (the mean over the folds under
    cross-validation).

    Per-epoch dev values (per fold, the running mean) go to the pruner; a pruned trial
    stops there.
    """
    task, metric = search.schema.task, search.objective.metric
    n_trials = search.budget.n_trials

    def objective(trial: optuna.Trial) -> float:
        count = f" ({trial.number + 1} of {n_trials})" if n_trials else ""
        name = f"trial {trial.number}{count}"  # numbered as in tune_trials.csv and MLflow
        overrides = space.suggest(trial, space.space_of(search.params))
        log.info("%s: %s", name, overrides)
        group.announce(group.TRIAL, overrides, name)  # under torchrun: the group trains it
        observer.started(trial, overrides)
        history: list[dict[str, float]] = []
        reported: list[float] = []

        def on_epoch(row: dict[str, float]) -> None:
            history.append(row)
            observer.epoch(trial, row)
            reported.append(space.epoch_value(row, search.objective, task))
            trial.report(reported[-1], int(row["epoch"]))
            if group.share_pruning(trial.should_prune()):
                raise optuna.TrialPruned(f"pruned at epoch {int(row['epoch'])}")

        try:
            fitted = search.fit(overrides, on_epoch, label=name)
            value = fitted.dev_scores[metric]
            if not math.isfinite(value):
                raise ValueError(f"dev {metric} is {value}")
        except optuna.TrialPruned:
            stopped = {"pruned_epoch": len(history), "pruned_value": reported[-1]}
            observer.ended(trial, "pruned", history, stopped)
            step, value = search.validation.step, reported[-1]
            log.info("%s: pruned at %s %d (dev value %.4f)", name, step, len(history), value)
            raise
        except BaseException as exc:
            observer.ended(trial, "failed", history, {}, f"{type(exc).__name__}: {exc}")
            raise
        scores = {f"dev_{name}": score for name, score in fitted.dev_scores.items()}
        observer.ended(trial, "complete", fitted.history, scores)
        log.info("%s: dev %s %.4f", name, metric, value)
        return value

    return objective


def coordinate(
    search: Search,
    study: optuna.Study,
    storage: Any,
    fingerprint: str,
    parent_run_id: str,
    observer: TrialObserver,
) -> tuple[Fitted, dict[str, Any]]:
    """Run trials beside any workers, wait for all, refit the best: (its model, tune.json)."""
    params = search.params
    space.check_fingerprint(study, fingerprint, claim=True)
    study.set_user_attr(PARENT_ATTR, parent_run_id)
    try:
        run_trials(
            study,
            make_objective(search, observer),
            search.budget,
            StudyLock(params.storage, params.study_name),
            storage,
            params.n_jobs,
            wait=True,
        )
    finally:
        if storage is not None:  # workers started later must not join a finished run
            study.set_user_attr(PARENT_ATTR, "")
    best_trial = space.best_trial(study)
    overrides, label = (
        space.decode_params(best_trial.params, space.space_of(params)),
        "refit of the best trial",
    )
    group.announce(group.REFIT, overrides, label)
    best = search.fit(overrides, label=label)
    group.announce(group.DONE)
    return best, summarize(search, study, best_trial, best)


def work(search: Search, study: optuna.Study, storage: Any, observer: TrialObserver) -> None:
    """A worker's share: claim and run trials of the shared study until none is left."""
    params = search.params
    lock = StudyLock(params.storage, params.study_name)
    objective = make_objective(search, observer)
    run_trials(study, objective, search.budget, lock, storage, params.n_jobs, wait=False)
    log.info("worker done: study %r has no more trials to claim", params.study_name)


def wait_for_coordinator(search: Search, study: optuna.Study, wait_s: float) -> str | None:
    """The coordinator's run id once it has opened the study; None if the study is done."""
    deadline = time.monotonic() + wait_s
    while True:
        if next_action(study.get_trials(deepcopy=False), search.budget, 0.0, wait=False) == "stop":
            return None
        parent_run_id = study.user_attrs.get(PARENT_ATTR)
        if parent_run_id:
            return parent_run_id
        if time.monotonic() > deadline:
            raise UserError(
                f"--wait: no coordinator opened study {study.study_name!r} within {wait_s:g} s; "
                "start `dvc repro` (or `python -m stages.tune`) with the same tune.storage"
            )
        log.info("waiting for a coordinator to open study %r", study.study_name)
        time.sleep(min(1.0, wait_s))


def summarize(
    search: Search, study: optuna.Study, best_trial: optuna.trial.FrozenTrial, best: Fitted
) -> dict[str, Any]:
    """tune.json: the search, the best trial and its refit model, trial counts by state."""
    params = search.params
    return {
        "method": params.method,
        "model": search.train_params.model,  # the model searched (a space may vary it)
        "metric": search.objective.metric,
        "direction": search.objective.direction,
        "pruner": params.pruner,
        "validation": search.validation.describe(),
        "fixed": space.fixed_of(params),
        "best_trial": best_trial.number,
        "best_params": space.decode_params(best_trial.params, space.space_of(params)),
        "best_dev_score": best_trial.value,
        "n_trials": len(study.get_trials(deepcopy=False)),
        "trial_states": space.state_counts(study),
        "best_model": {
            "train": best.train_scores,
            "dev": best.dev_scores,
            "best_epoch": best.best_epoch,
            **({"dev_folds": best.dev_folds} if best.dev_folds is not None else {}),
        },
    }
