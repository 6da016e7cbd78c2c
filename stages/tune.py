"""Stage `tune`: search the space in params on dev (never test); save the best model.

`python -m stages.tune` (what `dvc repro` runs) coordinates: it opens the study, runs
trials, waits for trials running elsewhere, refits the best configuration with the first
train seed and writes models/tuned and the metrics. `python -m stages.tune --worker`
only runs trials of a study kept in a shared `tune.storage`. Every trial, whoever runs
it, is a nested MLflow run under the coordinator's stage run.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd

from reprotrain import config, tuning
from reprotrain.config import BaseParams, TrainParams, TuneParams
from reprotrain.config.errors import UserError, run_stage
from reprotrain.config.paths import SCHEMA, SPLIT_FILES, TUNE_METRICS, TUNE_TRIALS, TUNED_DIR
from reprotrain.data import datasets, io
from reprotrain.models import pretrained
from reprotrain.models.model import input_dtype, save_model
from reprotrain.training.fitting import configure_torch, fit_and_score, load_train_dev
from reprotrain.tuning.trials import Budget, StudyLock, next_action, run_trials

log = logging.getLogger(__name__)

PARENT_ATTR = "mlflow_parent_run_id"  # study attr: the coordinator's run, while it runs
RUN_ATTR = "mlflow_run_id"  # trial attr: the trial's nested run
RUN_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}


@dataclass(frozen=True)
class Search:
    """What the search needs: params, the data and the objective."""

    base: BaseParams
    train_params: TrainParams
    params: TuneParams
    schema: dict[str, Any]
    train: tuple[np.ndarray, np.ndarray]
    dev: tuple[np.ndarray, np.ndarray]
    objective: tuning.Objective

    @property
    def seed(self) -> int:
        return self.train_params.seeds[0]

    def fit(self, overrides: dict[str, Any], on_epoch: Any = None) -> Any:
        train_params = tuning.apply(self.train_params, overrides)
        return fit_and_score(
            train_params, self.schema, self.seed, self.train, self.dev, on_epoch=on_epoch
        )


def search_params(train_params: TrainParams, params: TuneParams) -> tuple[TrainParams, TuneParams]:
    """What every trial starts from (`tune.fixed` applied) and the space actually searched,
    every value of it checked. Reads no file: params errors come before any data is read.
    """
    train_params = tuning.trial_params(train_params, params)
    params = tuning.without_pretrained_layers(params, train_params)
    tuning.validate_space(params.space, train_params)
    return train_params, params


def make_search(
    base: BaseParams,
    train_params: TrainParams,
    params: TuneParams,
    schema: dict[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    dev: tuple[np.ndarray, np.ndarray],
) -> Search:
    """The search over the data; `train_params` and `params` as `search_params` returns them."""
    objective = tuning.resolve_objective(params, schema["task"])
    return Search(base, train_params, params, schema, train, dev, objective)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.tune", description=__doc__)
    parser.add_argument(
        "--worker",
        action="store_true",
        help="only run trials of the study in tune.storage (the coordinator writes outputs)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=600.0,
        help="worker: seconds to wait for a coordinator to open the study (default 600)",
    )
    return parser.parse_args(argv)


def make_objective(search: Search, parent_run_id: str) -> Callable[[optuna.Trial], float]:
    """trial -> dev metric of the trial's configuration, logged as a nested run.

    Per-epoch dev values go to the pruner; a pruned trial stops at that epoch.
    """
    from reprotrain import tracking

    task, metric = search.schema["task"], search.objective.metric

    def objective(trial: optuna.Trial) -> float:
        overrides = tuning.suggest(trial, search.params.space)
        run_id = tracking.child_run(
            parent_run_id, f"trial-{trial.number}", "tune", {"worker": worker_name()}
        )
        trial.set_user_attr(RUN_ATTR, run_id)
        tracking.log_params(run_id, {"trial": trial.number, **overrides})
        history: list[dict[str, float]] = []

        def on_epoch(row: dict[str, float]) -> None:
            history.append(row)
            trial.report(tuning.epoch_value(row, search.objective, task), int(row["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {int(row['epoch'])}")

        try:
            fitted = search.fit(overrides, on_epoch)
            value = fitted.dev_scores[metric]
            if not math.isfinite(value):
                raise ValueError(f"dev {metric} is {value}")
        except optuna.TrialPruned:
            end_trial_run(run_id, "pruned", history, {"pruned_epoch": len(history)})
            raise
        except BaseException as exc:
            end_trial_run(run_id, "failed", history, {}, f"{type(exc).__name__}: {exc}")
            raise
        scores = {f"dev_{name}": score for name, score in fitted.dev_scores.items()}
        end_trial_run(run_id, "complete", fitted.history, scores)
        log.info("trial %d: dev %s %.4f", trial.number, metric, value)
        return value

    return objective


def worker_name() -> str:
    """host:pid of the process running a trial (tagged on its nested run)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def end_trial_run(
    run_id: str,
    state: str,
    history: list[dict[str, float]],
    final: dict[str, float],
    error: str | None = None,
) -> None:
    from reprotrain import tracking

    tracking.log_history(run_id, history)
    tracking.log_metrics(run_id, final)
    tags = {"state": state, **({"error": error[:500]} if error else {})}
    tracking.set_tags(run_id, tags)
    tracking.end_run(run_id, RUN_STATUS[state])


def close_lost_runs(study: optuna.Study) -> None:
    """Nested runs of trials whose worker died are left RUNNING: mark them failed."""
    from reprotrain import tracking

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        run_id = trial.user_attrs.get(RUN_ATTR)
        if run_id and tracking.run_status(run_id) == "RUNNING":
            tracking.set_tags(run_id, {"state": "failed", "error": "worker lost"})
            tracking.end_run(run_id, "FAILED")


def summarize(search: Search, study: optuna.Study, best_trial: Any, best: Any) -> dict:
    """tune.json: the search, the best trial and its refit model, trial counts by state."""
    params = search.params
    return {
        "method": params.method,
        "metric": search.objective.metric,
        "direction": search.objective.direction,
        "pruner": params.pruner,
        "fixed": params.fixed,
        "best_trial": best_trial.number,
        "best_params": tuning.decode_params(best_trial.params, params.space),
        "best_dev_score": best_trial.value,
        "n_trials": len(study.get_trials(deepcopy=False)),
        "trial_states": tuning.state_counts(study),
        "best_model": {
            "train": best.train_scores,
            "dev": best.dev_scores,
            "best_epoch": best.best_epoch,
        },
    }


def log_study(run_id: str, study: optuna.Study, summary: dict, seed: int) -> None:
    """The parent run: best params and score, counts, history and importance plots."""
    from reprotrain import tracking
    from reprotrain.reporting import plots

    counts = {f"trials_{state}": n for state, n in summary["trial_states"].items()}
    tracking.log_metrics(
        run_id,
        tracking.flat_metrics(
            {"best_dev_score": summary["best_dev_score"], "n_trials": summary["n_trials"]}
        )
        | counts
        | tracking.flat_metrics({"best_model": summary["best_model"]}),
    )
    tracking.log_params(run_id, {"best": summary["best_params"]})
    tracking.set_tags(run_id, {"best_trial": summary["best_trial"]})
    tracking.log_artifact(run_id, TUNE_METRICS)
    tracking.log_artifact(run_id, TUNE_TRIALS)
    rows = [
        {"trial": t.number, "state": tuning.state_name(t), "value": _last_value(t)}
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    ]
    figure = plots.study_history_figure(rows, summary["metric"], summary["direction"])
    tracking.log_figure(run_id, figure, "optimization_history.png")
    importances, reason = tuning.param_importances(study, seed)
    if importances is None:
        log.info("no parameter importance plot: %s", reason)
        tracking.set_tags(run_id, {"param_importance": f"skipped: {reason}"})
        return
    tracking.log_metrics(run_id, {f"importance.{k}": v for k, v in importances.items()})
    tracking.log_figure(run_id, plots.importance_figure(importances), "param_importances.png")


def _last_value(trial: optuna.trial.FrozenTrial) -> float | None:
    if trial.value is not None:
        return trial.value
    if trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


def coordinate(
    search: Search, study: optuna.Study, storage: Any, fingerprint: str, preprocessor: Any
) -> None:
    """Run trials (beside any workers), wait for all, then write the outputs."""
    from reprotrain import tracking

    params = search.params
    logged = {
        "base": search.base.model_dump(),
        "train": search.train_params.model_dump(),
        "tune": params.model_dump() | {"storage": tuning.redact(params.storage or "memory")},
    }
    with tracking.stage_run("tune", logged) as run:
        run_id = run.info.run_id
        tracking.log_split_inputs(search.schema, {s: SPLIT_FILES[s] for s in ("train", "dev")})
        tuning.check_fingerprint(study, fingerprint, claim=True)
        study.set_user_attr(PARENT_ATTR, run_id)
        try:
            run_trials(
                study,
                make_objective(search, run_id),
                Budget(tuning.trial_budget(params), params.timeout),
                StudyLock(params.storage, params.study_name),
                storage,
                params.n_jobs,
                wait=True,
            )
        finally:
            if storage is not None:  # workers started later must not join a finished run
                study.set_user_attr(PARENT_ATTR, "")
        close_lost_runs(study)
        best_trial = tuning.best_trial(study)
        best = search.fit(tuning.decode_params(best_trial.params, params.space))
        summary = summarize(search, study, best_trial, best)
        with io.atomic_dir(TUNED_DIR) as tmp:
            save_model(best.model, preprocessor, tmp)
        io.write_json(TUNE_METRICS, summary)
        io.write_csv(TUNE_TRIALS, pd.DataFrame(tuning.trials_table(study)))
        log_study(run_id, study, summary, search.base.seed)
        tracking.tag_weights(run_id, TUNED_DIR)
        lineage = pretrained.lineage(search.train_params.init_from)
        if lineage is not None:
            tracking.log_init_from(run_id, lineage)
        example = datasets.example_frame(SPLIT_FILES["train"], search.schema)
        tracking.log_model(TUNED_DIR, search.schema, example)
    log.info(
        "best dev %s %.4f (trial %d of %d; %s): %s",
        summary["metric"],
        summary["best_dev_score"],
        summary["best_trial"],
        summary["n_trials"],
        summary["trial_states"],
        summary["best_params"],
    )


def work(
    search: Search, study: optuna.Study, storage: Any, fingerprint: str, wait_s: float
) -> None:
    """Run trials of a shared study under the coordinator's MLflow run; write nothing."""
    from reprotrain import tracking

    params = search.params
    budget = Budget(tuning.trial_budget(params), params.timeout)
    parent_run_id = wait_for_coordinator(study, budget, wait_s)
    if parent_run_id is None:
        log.info("study %r needs no more trials", params.study_name)
        return
    tuning.check_fingerprint(study, fingerprint, claim=False)
    tracking.setup()
    if tracking.run_status(parent_run_id) is None:
        raise UserError(
            f"MLFLOW_TRACKING_URI: the coordinator's run {parent_run_id} is not in "
            f"{tracking.tracking_uri()}; point every worker at the coordinator's MLflow store"
        )
    lock = StudyLock(params.storage, params.study_name)
    objective = make_objective(search, parent_run_id)
    run_trials(study, objective, budget, lock, storage, params.n_jobs, wait=False)
    log.info("worker done: study %r has no more trials to claim", params.study_name)


def wait_for_coordinator(study: optuna.Study, budget: Budget, wait_s: float) -> str | None:
    """The coordinator's run id once it has opened the study; None if the study is done."""
    deadline = time.monotonic() + wait_s
    while True:
        if next_action(study.get_trials(deepcopy=False), budget, 0.0, wait=False) == "stop":
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base, train_params, params = config.load("base", "train", "tune")
    if args.worker and params.storage is None:
        raise UserError(
            "params.yaml: tune.storage: --worker needs a shared storage (sqlite:///... or "
            "postgresql://...), got null"
        )
    train_params, params = search_params(train_params, params)
    schema = io.read_json(SCHEMA)
    preprocessor, train, dev = load_train_dev(schema, dtype=input_dtype(train_params.model))
    search = make_search(base, train_params, params, schema, train, dev)
    configure_torch(base)  # always: the search may pick a torch model whatever train.model is
    storage = tuning.open_storage(params.storage)
    max_epochs = tuning.max_epochs(params, search.train_params)
    study = tuning.open_study(params, search.objective, base.seed, storage, max_epochs)
    fingerprint = tuning.fingerprint(params, search.train_params, search.objective, train, dev)
    if args.worker:
        work(search, study, storage, fingerprint, args.wait)
    else:
        coordinate(search, study, storage, fingerprint, preprocessor)


if __name__ == "__main__":
    run_stage(main)
