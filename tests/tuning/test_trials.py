"""tuning/trials.py: budget, claiming under a lock, failures, resume and lost-trial retries.

Objectives here are cheap functions, so the runner's bookkeeping is tested on its own; the
tune stage's tests run it with real training.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from project_copy import REPO_ROOT

from reprotrain import tuning
from reprotrain.tuning import trials
from reprotrain.tuning.trials import Budget, StudyLock, counted, next_action, run_trials


def frozen(state: TrialState, number_retried: list[int] | None = None):
    attrs = {"retry_history": number_retried} if number_retried else {}
    value = 1.0 if state == TrialState.COMPLETE else None
    return optuna.create_trial(state=state, value=value, system_attrs=attrs)


def numbered(*trials):
    study = optuna.create_study()
    for trial in trials:
        study.add_trial(trial)
    return study.get_trials()


@pytest.mark.parametrize(
    ("states", "budget", "elapsed", "wait", "action"),
    [
        ([], Budget(2, None), 0, True, "ask"),
        ([TrialState.COMPLETE], Budget(2, None), 0, True, "ask"),
        ([TrialState.COMPLETE, TrialState.FAIL], Budget(2, None), 0, True, "stop"),
        ([TrialState.COMPLETE, TrialState.RUNNING], Budget(2, None), 0, True, "wait"),
        ([TrialState.COMPLETE, TrialState.RUNNING], Budget(2, None), 0, False, "stop"),
        ([TrialState.COMPLETE, TrialState.WAITING], Budget(2, None), 0, False, "ask"),
        ([TrialState.COMPLETE], Budget(None, 10.0), 5, True, "ask"),
        ([TrialState.COMPLETE], Budget(None, 10.0), 11, True, "stop"),
        ([TrialState.COMPLETE], Budget(5, 10.0), 11, True, "stop"),
    ],
    ids=[
        "empty",
        "under-budget",
        "failed-count",
        "others-running-wait",
        "others-running-worker",
        "queued-retry",
        "timeout-open",
        "timeout-over",
        "timeout-before-budget",
    ],
)
def test_next_action(states, budget, elapsed, wait, action) -> None:
    trials = numbered(*(frozen(state) for state in states))
    assert next_action(trials, budget, elapsed, wait) == action


def test_a_lost_trial_counts_once_through_its_retry() -> None:
    trials = numbered(
        frozen(TrialState.COMPLETE), frozen(TrialState.FAIL), frozen(TrialState.COMPLETE, [1])
    )
    assert counted(trials) == 2


def quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1, 1)
    return x * x


def test_exactly_n_trials_with_parallel_threads() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    run_trials(study, quadratic, Budget(7, None), StudyLock(None, "s"), n_jobs=3)
    assert len(study.trials) == 7
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}


def test_failures_are_recorded_and_the_study_goes_on() -> None:
    def objective(trial: optuna.Trial) -> float:
        if trial.number == 1:
            raise ValueError("diverged")
        if trial.number == 2:
            raise optuna.TrialPruned()
        return quadratic(trial)

    study = optuna.create_study()
    run_trials(study, objective, Budget(4, None), StudyLock(None, "s"))
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["error"] == "ValueError: diverged"


def test_timeout_stops_claiming(tmp_path: Path) -> None:
    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.3)
        return quadratic(trial)

    study = optuna.create_study()
    run_trials(study, slow, Budget(None, 0.1), StudyLock(None, "s"))
    assert len(study.trials) == 1  # claimed before the time was up, then finished


FILE_STORAGES = pytest.mark.parametrize(
    "filename", ["t.db", "t.journal"], ids=["sqlite", "journal"]
)


def sqlite_study(path: Path, sampler=None, **storage_kwargs) -> tuple[optuna.Study, object, str]:
    """A study in a file storage: SQLite (t.db) or a journal file (t.journal)."""
    url = f"{'journal' if path.suffix == '.journal' else 'sqlite'}:///{path}"
    storage = tuning.open_storage(url, **storage_kwargs)
    study = optuna.create_study(
        study_name="s", storage=storage, sampler=sampler, load_if_exists=True
    )
    return study, storage, url


@FILE_STORAGES
def test_rerun_continues_the_study_to_its_total(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    study, storage, url = sqlite_study(path, optuna.samplers.RandomSampler(seed=0))
    run_trials(study, quadratic, Budget(3, None), StudyLock(url, "s"), storage)
    first = [t.params for t in study.trials]
    again, storage, url = sqlite_study(path, optuna.samplers.RandomSampler(seed=1))
    run_trials(again, quadratic, Budget(5, None), StudyLock(url, "s"), storage)
    assert len(again.trials) == 5
    assert [t.params for t in again.trials[:3]] == first
    run_trials(again, quadratic, Budget(5, None), StudyLock(url, "s"), storage)
    assert len(again.trials) == 5  # already done: nothing more


@FILE_STORAGES
def test_an_interrupted_trial_is_queued_again(tmp_path: Path, filename: str) -> None:
    study, storage, url = sqlite_study(tmp_path / filename)

    def interrupted(trial: optuna.Trial) -> float:
        trial.suggest_float("x", -1, 1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trials(study, interrupted, Budget(2, None), StudyLock(url, "s"), storage)
    lost_x = study.trials[0].params["x"]
    run_trials(study, quadratic, Budget(2, None), StudyLock(url, "s"), storage)
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].params["x"] == lost_x  # the retry runs the lost params
    assert counted(study.trials) == 2


@pytest.mark.slow
@FILE_STORAGES
def test_a_trial_of_a_dead_worker_is_failed_and_retried(tmp_path: Path, filename: str) -> None:
    study, storage, url = sqlite_study(tmp_path / filename, heartbeat_s=1, grace_s=1)
    orphan = study.ask()  # claimed by a worker that dies before telling
    orphan.suggest_float("x", -1, 1)
    storage.record_heartbeat(trials.trial_id(storage, study, orphan))
    time.sleep(2.5)
    run_trials(study, quadratic, Budget(3, None), StudyLock(url, "s"), storage)
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL
    assert states.count(TrialState.COMPLETE) == 3  # the retry plus two new trials
    retry = next(t for t in study.trials if t.system_attrs.get("failed_trial") == 0)
    assert retry.params == study.trials[0].params and retry.state == TrialState.COMPLETE


WORKER = textwrap.dedent(
    """
    import sys, time, optuna
    from reprotrain import tuning
    from reprotrain.tuning.trials import Budget, StudyLock, run_trials

    url = sys.argv[1]
    storage = tuning.open_storage(url)
    grid = {"x": [0, 1, 2, 3], "y": [0, 1]}
    study = optuna.create_study(
        study_name="grid", storage=storage, sampler=tuning.BudgetedGridSampler(grid),
        load_if_exists=True,
    )

    def objective(trial):
        x = trial.suggest_categorical("x", grid["x"])
        y = trial.suggest_categorical("y", grid["y"])
        time.sleep(0.2)
        return x + y

    run_trials(study, objective, Budget(8, None), StudyLock(url, "grid"), storage, n_jobs=2)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "url", ["sqlite:///grid.db", "journal:///grid.journal"], ids=["sqlite", "journal"]
)
def test_processes_sharing_a_file_study_run_each_point_once(tmp_path: Path, url: str) -> None:
    """Two worker processes, one study file: 8 grid points, each run once, 8 trials in all."""
    url = tuning.storage_url(url, root=tmp_path)
    storage = tuning.open_storage(url)  # create the schema once, before the workers race
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=240)
        assert worker.returncode == 0, stderr[-2000:]
    study = optuna.load_study(study_name="grid", storage=storage)
    points = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(points) == 8 and len(set(points)) == 8
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}
