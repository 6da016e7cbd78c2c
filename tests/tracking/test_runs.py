"""tracking/runs.py on a real (SQLite) MLflow store: the experiment and its stage runs."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from reprotrain import tracking


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
