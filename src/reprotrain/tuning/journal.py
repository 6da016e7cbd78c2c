"""A study in a journal file on a shared disk (Optuna's JournalStorage), with heartbeats.

Optuna's journal storage has no heartbeats of its own, so a trial whose worker died would
stay RUNNING for ever. Here a running trial records the time in a system attr every few
seconds; a RUNNING trial silent for the grace period is failed and retried as a new trial
with the same params, by Optuna's `RetryHeartbeatStaleTrialCallback`, as on a database.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

HEARTBEAT_ATTR = "heartbeat"  # seconds since the epoch, of a running trial's last beat


class HeartbeatJournalStorage(optuna.storages.JournalStorage):
    """A journal file storage whose running trials send heartbeats (`record_heartbeat`) and
    whose silent ones are failed and retried (`fail_stale`)."""

    def __init__(self, path: Path, heartbeat_s: int, grace_s: int, max_retry: int):
        # The open-lock (an O_EXCL lock file) works on NFS v3 and later, as Optuna advises.
        lock = JournalFileOpenLock(f"{path}.lock")
        super().__init__(JournalFileBackend(str(path), lock_obj=lock))
        self.path = path
        self.heartbeat_s, self.grace_s = heartbeat_s, grace_s
        with warnings.catch_warnings():  # the callback is experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def get_heartbeat_interval(self) -> int:
        return self.heartbeat_s

    def record_heartbeat(self, trial_id: int) -> None:
        # another worker may have failed the trial as stale meanwhile: then it has ended
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def fail_stale(self, study: optuna.Study) -> list[int]:
        """Fail the running trials silent for longer than the grace period and queue a retry
        of each; returns their numbers. Call it under the study's claim lock."""
        study_id = self.get_study_id_from_name(study.study_name)
        now, failed = time.time(), []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - float(trial.system_attrs.get(HEARTBEAT_ATTR, started)) <= self.grace_s:
                continue
            trial_id = self.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            try:
                self.set_trial_state_values(trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # it ended meanwhile
            self.retry(study, self.get_trial(trial_id))
            failed.append(trial.number)
        return failed
