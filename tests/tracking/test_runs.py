"""tracking/runs.py on a real (SQLite) MLflow store: the experiment and its stage runs."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from reprotrain import tracking
from reprotrain.tracking.runs import shown_tracking_uri


def test_the_experiment_is_one_of_model_development() -> None:
    """The UI opens such an experiment on its training runs, not on GenAI traces."""
    experiment_id = tracking.setup()
    experiment = MlflowClient().get_experiment(experiment_id)
    assert experiment.tags[tracking.EXPERIMENT_KIND] == "custom_model_development"


def test_an_experiment_made_before_gets_the_kind() -> None:
    tracking.setup()
    client = MlflowClient()
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    client.delete_experiment_tag(experiment.experiment_id, tracking.EXPERIMENT_KIND)
    assert tracking.setup() == experiment.experiment_id
    tags = client.get_experiment(experiment.experiment_id).tags
    assert tags[tracking.EXPERIMENT_KIND] == "custom_model_development"


def test_params_and_metrics_of_a_stage_run_are_flat() -> None:
    params = {"train": {"optim": {"lr": 0.001}, "mlp": {"hidden_sizes": [32]}, "fixed": {}}}
    with tracking.stage_run("train", params) as run:
        tracking.log_metrics(run.info.run_id, tracking.flat_metrics({"dev": {"accuracy": 0.9}}))
    logged = MlflowClient().get_run(run.info.run_id).data
    assert logged.params == {
        "train.optim.lr": "0.001",
        "train.mlp.hidden_sizes": "[32]",
        "train.fixed": "{}",
    }
    assert logged.metrics == {"dev_accuracy": 0.9}


@pytest.mark.slow
def test_four_processes_starting_together_on_a_new_store_all_log(tmp_path) -> None:
    """MLflow migrates a new SQLite store in whichever process comes first; without the
    lock, processes starting together fail with 'table ... already exists' (seen with two
    queue workers or torchrun ranks on a fresh workspace)."""
    import os
    import subprocess
    import sys

    store = tmp_path / "fresh" / "mlflow.db"
    store.parent.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    script = "from reprotrain import tracking\nwith tracking.stage_run('train', {}):\n    pass\n"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    experiment = MlflowClient(f"sqlite:///{store}").get_experiment_by_name(tracking.EXPERIMENT)
    runs = MlflowClient(f"sqlite:///{store}").search_runs([experiment.experiment_id])
    assert sorted(r.data.tags[tracking.RUN_KIND] for r in runs).count("stage") == 4


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            "postgresql+psycopg2://team:pw-123@db:5432/mlflow",
            "postgresql+psycopg2://team:***@db:5432/mlflow",
        ),
        ("http://alice:pw-123@mlflow.example.org:5000", "http://alice:***@mlflow.example.org:5000"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
    ids=["database", "basic-auth", "no-password"],
)
def test_messages_show_the_store_without_its_password(
    uri: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert shown_tracking_uri() == shown
