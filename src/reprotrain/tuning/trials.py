"""Run the trials of one study, alone or beside other workers, losing and repeating none.

A trial is claimed (`study.ask()`) under a lock that every thread and process sharing the
study takes, right after checking the budget: so the study ends with exactly its
`n_trials`, and the grid sampler never hands one grid point to two workers. The lock is a
thread lock in memory, a file lock beside a SQLite study or a journal file and an advisory
lock on PostgreSQL. On a shared storage a running trial sends heartbeats; a trial whose
worker died is failed after a grace period and retried as a new trial with the same params.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from reprotrain.tuning import MAX_RETRY, storage_url
from reprotrain.tuning.journal import HeartbeatJournalStorage
from reprotrain.tuning.search import JOURNAL, SQLITE

log = logging.getLogger(__name__)

ERROR_CHARS = 500  # of a failed trial's error kept in the study


@dataclass(frozen=True)
class Budget:
    n_trials: int | None  # total trials of the study, over every run and worker
    timeout: float | None  # seconds in which this process may claim new trials


def counted(trials: list[FrozenTrial]) -> int:
    """Trials that count against the budget: a lost trial counts once, through its retry."""
    retried = {number for trial in trials for number in trial.system_attrs.get("retry_history", [])}
    return sum(1 for trial in trials if trial.number not in retried)


def next_action(trials: list[FrozenTrial], budget: Budget, elapsed: float, wait: bool) -> str:
    """'ask' for a trial, 'wait' for running ones, or 'stop'."""
    if any(trial.state == TrialState.WAITING for trial in trials):
        return "ask"  # a queued retry: it is already counted, and someone must run it
    timed_out = budget.timeout is not None and elapsed >= budget.timeout
    if not timed_out and (budget.n_trials is None or counted(trials) < budget.n_trials):
        return "ask"
    if wait and any(trial.state == TrialState.RUNNING for trial in trials):
        return "wait"
    return "stop"


class StudyLock:
    """Held while a trial is claimed: by threads, and by processes on a shared storage."""

    def __init__(self, url: str | None, study_name: str):
        self.url = storage_url(url) if url else None
        self.key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], signed=True)
        self._thread_lock = threading.Lock()
        self._engine: Any = None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            if self.url is None:
                yield
            elif self.url.startswith(SQLITE):
                with self._file_lock(Path(self.url[len(SQLITE) :])):
                    yield
            elif self.url.startswith(JOURNAL):
                with self._open_lock(Path(self.url[len(JOURNAL) :])):
                    yield
            else:
                with self._advisory_lock(self.url):
                    yield

    @staticmethod
    @contextlib.contextmanager
    def _file_lock(database: Path) -> Iterator[None]:
        import fcntl

        with database.with_name(database.name + ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    @contextlib.contextmanager
    def _open_lock(journal: Path) -> Iterator[None]:
        """Optuna's lock file for journals on NFS (created with O_EXCL; a lock older than
        its grace period, left by a dead worker, is broken)."""
        from optuna.storages.journal import JournalFileOpenLock

        lock = JournalFileOpenLock(str(journal.with_name(journal.name + ".claim.lock")))
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def _advisory_lock(self, url: str) -> Iterator[None]:
        import sqlalchemy

        if self._engine is None:  # no pool: a dropped connection releases the lock
            self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with self._engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
            try:
                yield
            finally:
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                )


def trial_id(storage: Any, study: optuna.Study, trial: optuna.Trial) -> int:
    """The storage's id of a trial (what heartbeats and retries name), by public calls."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)


@contextlib.contextmanager
def heartbeat(storage: Any, study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Tell the storage every few seconds that this trial's worker is alive."""
    interval = storage.get_heartbeat_interval() if storage is not None else None
    if not interval:
        yield
        return
    trial_id_ = trial_id(storage, study, trial)
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            storage.record_heartbeat(trial_id_)
            stop.wait(interval)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale(study: optuna.Study, storage: Any = None) -> None:
    """Fail (and queue a retry of) running trials whose worker stopped sending heartbeats."""
    if isinstance(storage, HeartbeatJournalStorage):
        storage.fail_stale(study)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def ask(study: optuna.Study) -> optuna.Trial:
    """study.ask(), minus Optuna's warning that heartbeats belong to Study.optimize: this
    module sends them itself (`heartbeat`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        return study.ask()


def run_one(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], float],
    storage: Any,
) -> TrialState:
    """Run one claimed trial and record how it ended; a failure does not stop the study."""
    try:
        with heartbeat(storage, study, trial):
            value = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    except KeyboardInterrupt:
        _fail(study, trial, "interrupted")
        if storage is not None:  # the study outlives this process: queue the trial again
            frozen = storage.get_trial(trial_id(storage, study, trial))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
            retry(study, frozen)
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the trial; the study goes on
        message = f"{type(exc).__name__}: {exc}"
        log.warning("trial %d failed: %s", trial.number, message)
        _fail(study, trial, message)
        return TrialState.FAIL
    study.tell(trial, value)
    return TrialState.COMPLETE


def _fail(study: optuna.Study, trial: optuna.Trial, message: str) -> None:
    trial.set_user_attr("error", message[:ERROR_CHARS])
    study.tell(trial, state=TrialState.FAIL)


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    budget: Budget,
    lock: StudyLock,
    storage: Any = None,
    n_jobs: int = 1,
    wait: bool = True,
    poll_s: float = 1.0,
) -> None:
    """Claim and run trials in `n_jobs` threads until the budget is spent.

    With `wait`, return only once no trial of the study is running (the coordinator
    waits for the workers); without, return when no more trials can be claimed.
    """
    started = time.monotonic()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with lock.hold():
                fail_stale(study, storage)
                trials = study.get_trials(deepcopy=False)
                action = next_action(trials, budget, time.monotonic() - started, wait)
                trial = ask(study) if action == "ask" else None
            if action == "stop":
                return
            if trial is None:
                time.sleep(poll_s)
                continue
            run_one(study, trial, objective, storage)

    if n_jobs == 1:
        loop()
        return
    with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="trial") as pool:
        futures = [pool.submit(loop) for _ in range(n_jobs)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            stop.set()  # no new claims; running trials finish before the pool closes
            raise
