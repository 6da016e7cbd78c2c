"""`tune.processes: 2`: one trial is one process group of 2 CPU processes under torchrun.
Rank 0 alone asks and tells the study, so N trials stay N trials, and its pruning
decisions stop every rank at the same epoch (or the run would hang)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from test_train_distributed import blobs, run_stage
from test_tune_stage import write_data

from reprotrain.config import paths

TRAIN = {
    "model": "mlp",
    "seeds": [0],
    "device": "cpu",
    "progress": "log",
    "mlp": {"hidden_sizes": [16], "dropout": 0.0},
    "augment": {"enabled": False},
    "optim": {"lr": 0.01, "batch_size": 32, "epochs": 8},
    "early_stopping": {"patience": 8},
}
TUNE = {
    "method": "random",
    "n_trials": 6,
    "processes": 2,
    "pruner": "median",
    "prune_startup_trials": 1,
    "prune_warmup_epochs": 1,
    "fixed": {},
    "space": {"optim.lr": {"type": "float", "low": 0.000001, "high": 0.05, "log": True}},
}


@pytest.mark.slow
def test_each_trial_trains_on_the_process_group(workdir, mlflow_env: str) -> None:
    root = workdir({"base": {"seed": 0, "threads": 1}, "train": TRAIN, "tune": TUNE})
    write_data(root, blobs())
    log = run_stage(root, "tune")
    assert "--nproc_per_node=2" in log
    assert "rank 0 of 2 joined the process group (gloo)" in log

    summary = json.loads((root / paths.TUNE_METRICS).read_text())
    assert summary["n_trials"] == 6  # not 12: only rank 0 asks the study
    trials = pd.read_csv(root / paths.TUNE_TRIALS)
    assert len(trials) == 6
    # seeded: trials 1, 2 and 5 (lr near 1e-6) fall below the median and are pruned on
    # both ranks at the same epoch; the run would hang otherwise
    assert trials["state"].tolist().count("pruned") >= 1
    assert sorted(set(trials["state"])) == ["complete", "pruned"]
    client = MlflowClient(mlflow_env)
    experiments = [e.experiment_id for e in client.search_experiments()]
    trial_runs = client.search_runs(experiments, "tags.run_kind = 'trial'")
    assert len(trial_runs) == 6
    assert (root / paths.TUNED_DIR / "model.json").is_file()
