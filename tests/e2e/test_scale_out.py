"""Beyond one machine on existing engines, each a real server on 127.0.0.1: a team MLflow
tracking server (`scripts/tracking_server.sh`: runs in PostgreSQL, artifacts in an S3
bucket proxied by the server) and DVC remotes (the same S3 API through dvc-s3, and a
folder). One small `dvc repro` runs against them; the tests read it back from elsewhere."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import servers
from project_copy import committed_copy, dvc, git, pipeline_env, run, small_params

from reprotrain import tracking
from reprotrain.config import paths
from reprotrain.data.schema import Schema

BUCKET = "team"
UP_TO_DATE = "Data and pipelines are up to date."


@dataclass(frozen=True)
class Team:
    url: str  # what clients set as MLFLOW_TRACKING_URI
    s3: str  # the S3 API's endpoint
    keys: dict[str, str]  # the bucket's keys, as boto3 takes them
    secrets: tuple[str, ...]  # the database password and the keys: printed nowhere
    server_log: Path


@dataclass(frozen=True)
class Pipeline:
    repo: Path
    output: str  # everything `dvc repro` printed


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """PostgreSQL, an S3 API (moto) and the tracking server over both, as a team runs them."""
    home = tmp_path_factory.mktemp("team")
    password, access_key = f"pg-{secrets.token_hex(8)}", f"AKIA{secrets.token_hex(8).upper()}"
    secret_key = f"s3-{secrets.token_hex(16)}"
    keys = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
    with servers.postgres_server() as postgres, servers.s3_server(home / "s3.log") as s3:
        servers.create_bucket(s3, BUCKET, keys)
        env = {
            **pipeline_env(),
            "MLFLOW_BACKEND_STORE_URI": servers.create_owned_database(postgres, "mlflow", password),
            "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/mlflow",
            "MLFLOW_S3_ENDPOINT_URL": s3,
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        log = home / "mlflow-server.log"
        with servers.tracking_server(env, log) as url:
            yield Team(url, s3, keys, (password, access_key, secret_key), log)


@pytest.fixture(scope="module")
def pipeline(team: Team, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A project with two DVC remotes (the bucket, default; a folder), its pipeline run
    with MLFLOW_TRACKING_URI alone pointing at the server (no storage keys), committed."""
    repo = tmp_path_factory.mktemp("alice") / "repo"
    committed_copy(repo, small_params())
    dvc(repo, "remote", "add", "--default", "team", f"s3://{BUCKET}/dvc")
    dvc(repo, "remote", "modify", "team", "endpointurl", team.s3)
    set_keys(repo, team)  # in .dvc/config.local: never committed
    dvc(repo, "remote", "add", "shelf", str(tmp_path_factory.mktemp("shelf")))
    assert "AWS_SECRET_ACCESS_KEY" not in pipeline_env()  # the client has no storage keys
    result = dvc(repo, "repro", env={"MLFLOW_TRACKING_URI": team.url})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "repro")
    return Pipeline(repo, result.stdout + result.stderr)


def set_keys(repo: Path, team: Team) -> None:
    dvc(repo, "remote", "modify", "--local", "team", "access_key_id", team.secrets[1])
    dvc(repo, "remote", "modify", "--local", "team", "secret_access_key", team.secrets[2])


def test_the_team_server_holds_every_run_artifact_and_the_champion(
    team: Team, pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # a colleague's machine: nothing of the project is read
    client = MlflowClient(tracking_uri=team.url)
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    top = {r.data.tags["stage"]: r for r in runs if r.data.tags.get(tracking.RUN_KIND) == "stage"}
    assert set(top) == {"train", "tune", "evaluate"}
    assert {r.info.status for r in top.values()} == {"FINISHED"}

    def children(stage: str) -> list:
        return [r for r in runs if r.data.tags.get(tracking.PARENT_TAG) == top[stage].info.run_id]

    (seed,) = children("train")
    epochs = client.get_metric_history(seed.info.run_id, "dev_loss")
    assert sorted(metric.step for metric in epochs) == [1, 2, 3, 4, 5]  # per-epoch metrics
    trials = children("tune")
    assert len(trials) == 2 and all(
        client.get_metric_history(t.info.run_id, "dev_loss") for t in trials
    )

    stored = servers.bucket_keys(team.s3, BUCKET, team.keys)
    run_files = {
        stage: {key.rsplit("/artifacts/", 1)[1] for key in stored if f"/{r.info.run_id}/" in key}
        for stage, r in top.items()
    }
    assert {"loss_curves.png", "train_history.csv"} <= run_files["train"]
    assert {"optimization_history.png", "tune.json"} <= run_files["tune"]
    assert {"report.md", "confusion_matrix.png"} <= run_files["evaluate"]
    assert any(key.endswith("/MLmodel") for key in stored)  # the registered pyfunc model

    schema = Schema.read(pipeline.repo / paths.SCHEMA)
    name = tracking.registered_model_name(schema, None)
    champion = client.get_model_version_by_alias(name, tracking.CHAMPION)
    assert champion.tags["model_digest"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.url)
    rows = pd.read_parquet(pipeline.repo / paths.SPLIT_FILES["test"])[schema.feature_names]
    predictions = tracking.predict_registered(name, rows.head(5))  # models:/<name>@champion
    assert len(predictions) == 5


def test_no_secret_in_logs_params_or_tags(team: Team, pipeline: Pipeline) -> None:
    from mlflow.tracking import MlflowClient

    server_log = team.server_log.read_text()
    assert "mlflow:***@127.0.0.1" in server_log  # the script says where the runs go
    client = MlflowClient(tracking_uri=team.url)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=1000)
    versions = client.search_model_versions()
    stored = [
        *(str(value) for r in runs for value in (*r.data.params.values(), *r.data.tags.values())),
        *(str(value) for v in versions for value in v.tags.values()),
        *(str(value) for e in experiments for value in e.tags.values()),
    ]
    for secret in team.secrets:
        assert secret not in pipeline.output, "a secret in the pipeline's output"
        assert secret not in server_log, "a secret in the tracking server's log"
        assert not [value for value in stored if secret in value], "a secret in MLflow"


def test_dvc_push_then_pull_into_a_fresh_clone_reruns_nothing(
    team: Team, pipeline: Pipeline, tmp_path: Path
) -> None:
    dvc(pipeline.repo, "push")  # the default remote: the bucket
    dvc(pipeline.repo, "push", "--remote", "shelf")
    stored = servers.bucket_keys(team.s3, BUCKET, team.keys)
    assert any(key.startswith("dvc/files/md5/") for key in stored)
    for remote in ("team", "shelf"):
        clone = tmp_path / remote
        run(tmp_path, "git", "clone", "-q", str(pipeline.repo), str(clone))
        if remote == "team":
            set_keys(clone, team)
        dvc(clone, "pull", "--remote", remote)
        assert (clone / paths.TUNED_DIR).is_dir()
        assert UP_TO_DATE in dvc(clone, "status").stdout
        repro = dvc(clone, "repro")
        assert UP_TO_DATE in repro.stdout and "Running stage" not in repro.stdout
