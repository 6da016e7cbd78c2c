"""`dvc exp run -S tune.<key>=...` through the real DVC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reprotrain import tracking
from reprotrain.config import paths


@pytest.mark.e2e
def test_dvc_exp_run_sets_the_search(tmp_path: Path) -> None:
    """`dvc exp run -S tune.<key>=...` reruns prepare, split and tune with the new search."""
    from project_copy import committed_copy, dvc, small_params

    repo = tmp_path / "repo"
    committed_copy(repo, small_params())

    overrides = ["tune.method=grid", "tune.n_trials=null", "tune.pruner=median"]
    dvc(repo, "exp", "run", "--name", "grid-search", *(f"-S{o}" for o in overrides), "tune")
    result = json.loads((repo / paths.TUNE_METRICS).read_text())
    assert (result["method"], result["pruner"], result["n_trials"]) == ("grid", "median", 3)
    assert sum(result["trial_states"].values()) == 3

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id], max_results=100
    )
    parent = next(
        r
        for r in runs
        if r.data.tags.get(tracking.RUN_KIND) == "stage" and r.data.tags["stage"] == "tune"
    )
    assert parent.data.tags["dvc_experiment"] == "grid-search"
    trials = [r for r in runs if r.data.tags.get(tracking.PARENT_TAG) == parent.info.run_id]
    assert len(trials) == 3
