"""`train.processes: 2`: the train stage starts itself under torchrun (gloo, 2 CPU processes)
and trains with DistributedDataParallel; rank 0 alone writes files and MLflow runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from project_copy import REPO_ROOT
from test_tune_stage import write_data

from reprotrain.config import paths

TRAIN = {
    "model": "mlp",
    "seeds": [0],
    "device": "cpu",
    "progress": "log",
    "checkpoint": True,
    "mlp": {"hidden_sizes": [16], "dropout": 0.0},
    "augment": {"enabled": False},
    "optim": {"lr": 0.01, "batch_size": 32, "epochs": 40},
    # stops early: both ranks must stop at the same epoch, or the run hangs
    "early_stopping": {"monitor": "dev_loss", "patience": 3, "min_delta": 0.01},
}


def blobs(n: int = 600) -> pd.DataFrame:
    """Three overlapping classes, 4 features: not separable in a few epochs."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    centers = np.array([[0, 0, 0, 0], [1.5, 1.5, 0, 0], [0, 1.5, 1.5, 0]], dtype=float)
    frame = pd.DataFrame(centers[labels] + rng.normal(size=(n, 4)), columns=list("abcd"))
    frame["label"] = labels
    return frame


def run_stage(root: Path, stage: str, timeout: int = 400) -> str:
    """`python -m stages.<stage>` in `root` as DVC runs it (it may restart itself under
    torchrun); its log, after checking it succeeded."""
    done = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'src'}"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def run_train(root: Path, processes: int) -> dict[str, Any]:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["processes"] = processes
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run_stage(root, "train")
    history = pd.read_csv(root / paths.TRAIN_HISTORY)
    return {
        "log": log,
        "history": history,
        "metrics": json.loads((root / paths.TRAIN_METRICS).read_text()),
    }


def train_runs(client: MlflowClient) -> list[Any]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, "tags.stage = 'train'")


@pytest.mark.slow
def test_two_processes_match_one_and_write_once(workdir, mlflow_env: str) -> None:
    root = workdir(
        {"base": {"seed": 0, "threads": 1}, "train": TRAIN, "learning_curve": {"fractions": []}}
    )
    write_data(root, blobs())
    one = run_train(root, 1)
    client = MlflowClient(mlflow_env)
    assert len(train_runs(client)) == 2  # the stage run and its seed run

    two = run_train(root, 2)
    assert "--nproc_per_node=2" in two["log"]
    assert "rank 0 of 2 joined the process group (gloo)" in two["log"]
    # rank 1 logs warnings only: every epoch line is rank 0's, once
    assert two["log"].count("epoch 1: ") == 1
    # Same seeded permutation, each rank half of every global batch of 32, gradients
    # averaged: the same optimisation up to float rounding and the per-rank batch losses.
    first, second = one["history"], two["history"]
    assert abs(len(first) - len(second)) <= 2  # early stopping on the same dev curve
    assert len(second) < TRAIN["optim"]["epochs"]  # it did stop early, on both ranks
    scores = [run["metrics"]["model"]["dev"]["accuracy"]["mean"] for run in (one, two)]
    assert abs(scores[0] - scores[1]) <= 0.03, scores
    # outputs written once, by rank 0: one more stage run and one more seed run
    assert len(train_runs(client)) == 4
    assert (root / paths.seed_dir(paths.MODEL_DIR, 0) / "model.json").is_file()
