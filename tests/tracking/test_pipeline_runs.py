"""One pipeline execution = one parent run over its stage runs (a real SQLite MLflow store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from reprotrain import tracking
from reprotrain.tracking import stage_logs


def stage_runs(parent_id: str) -> list[Any]:
    client = MlflowClient()
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if r.data.tags.get(tracking.PARENT_TAG) == parent_id]


def test_a_dvc_experiment_is_named_after_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "newsy-matt")
    assert tracking.pipeline_label() == "newsy-matt"


def test_outside_an_experiment_a_param_change_is_a_new_execution(
    workdir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root: Path = workdir()
    monkeypatch.setattr(tracking.runs, "git_commit", lambda: "a60ca34" + "0" * 33)
    first = tracking.pipeline_label()
    assert first.startswith("a60ca34 params ") and tracking.pipeline_label() == first
    (root / "params.yaml").write_text((root / "params.yaml").read_text() + "\n# edited\n")
    assert tracking.pipeline_label() != first


@pytest.mark.slow  # a fresh SQLite store: MLflow's migrations take seconds
def test_the_stages_of_one_execution_share_its_parent_run(
    workdir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir({"train": {"optim": {"lr": 0.003}}})
    monkeypatch.setenv("DVC_EXP_NAME", "exp-one")
    with tracking.stage_run("train", {"train": {"seeds": [0]}}) as train:
        pass
    with tracking.stage_run("evaluate", {}) as evaluate:
        pass
    parent_id = train.data.tags[tracking.PARENT_TAG]
    assert evaluate.data.tags[tracking.PARENT_TAG] == parent_id
    parent = MlflowClient().get_run(parent_id)
    assert parent.info.run_name == "exp-one" and parent.info.status == "FINISHED"
    assert parent.data.tags[tracking.RUN_KIND] == "pipeline"
    assert parent.data.params["train.optim.lr"] == "0.003"  # every param of params.yaml
    names = sorted(r.info.run_name for r in stage_runs(parent_id))
    assert names == ["evaluate · exp-one", "train · exp-one"]

    monkeypatch.setenv("DVC_EXP_NAME", "exp-two")
    with tracking.stage_run("train", {}) as other:
        pass
    assert other.data.tags[tracking.PARENT_TAG] != parent_id


@pytest.mark.slow  # a fresh SQLite store: MLflow's migrations take seconds
def test_a_failed_stage_marks_its_execution_failed(
    workdir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir()
    monkeypatch.setenv("DVC_EXP_NAME", "exp-fails")
    with pytest.raises(RuntimeError), tracking.stage_run("train", {}) as run:
        tracking.runs.log_epoch(run.info.run_id, {"epoch": 1, "dev_loss": 0.5})
        raise RuntimeError("boom")
    client = MlflowClient()
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    # the epochs logged before the failure are in the store: the curve shows how it went
    assert [m.value for m in client.get_metric_history(run.info.run_id, "dev_loss")] == [0.5]
    assert client.get_run(run.data.tags[tracking.PARENT_TAG]).info.status == "FAILED"


def test_storage_passwords_stay_out_of_the_logged_params(workdir: Any) -> None:
    workdir({"tune": {"storage": "postgresql://optuna:s3cret@db.example:5432/optuna"}})
    logged = tracking.params_file()
    assert logged["tune"]["storage"] == "postgresql://optuna:***@db.example:5432/optuna"


@pytest.mark.slow  # a fresh SQLite store: MLflow's migrations take seconds
def test_epochs_stream_into_a_seed_run_while_it_trains(workdir: Any) -> None:
    """Each epoch reaches the store before the fit ends; rows it never saw (a checkpoint's,
    a model without epochs) are logged when the run closes."""
    workdir()
    with tracking.stage_run("train", {}) as run, stage_logs.SeedRuns(run) as seeds:
        on_epoch = seeds.start(0)
        on_epoch({"epoch": 2, "train_loss": 0.5, "dev_loss": 0.7})
        tracking.flush()
        streamed = MlflowClient().get_metric_history(on_epoch.run_id, "dev_loss")
        assert [(m.step, m.value) for m in streamed] == [(2, 0.7)]
        assert MlflowClient().get_run(on_epoch.run_id).info.status == "RUNNING"
        on_epoch.finish(
            [
                {"epoch": 1, "train_loss": 0.9, "dev_loss": 0.8},  # restored from a checkpoint
                {"epoch": 2, "train_loss": 0.5, "dev_loss": 0.7},
            ]
        )
    history = MlflowClient().get_metric_history(on_epoch.run_id, "dev_loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.8), (2, 0.7)]  # no duplicate
    # the stage ended with the seed's run still open: it is closed as failed
    assert MlflowClient().get_run(on_epoch.run_id).info.status == "FAILED"


def test_the_headline_metrics_name_the_selected_models_test_score() -> None:
    headline = {
        "selected": {
            "test": {"accuracy": 0.99, "accuracy_ci_low": 0.98, "accuracy_ci_high": 1.0},
            "dev": 0.97,
            "train_dev_gap": 0.01,
            "best_epoch": 11,
        },
        "baseline": {"test": {"accuracy": 0.1}, "dev": 0.11, "train_dev_gap": 0.0},
        "strong_baseline": {"test": {"accuracy": 0.95}, "dev": 0.94, "train_dev_gap": 0.02},
        "tune_best_dev": 0.98,
    }
    assert stage_logs.headline_metrics(headline, "accuracy") == {
        "test_accuracy": 0.99,
        "test_accuracy_ci_low": 0.98,
        "test_accuracy_ci_high": 1.0,
        "test_baseline_accuracy": 0.1,
        "test_strong_baseline_accuracy": 0.95,
        "train_dev_gap": 0.01,
        "tune_best_dev": 0.98,
        "dev_accuracy": 0.97,
        "dev_baseline_accuracy": 0.11,
        "best_epoch": 11,
    }
