"""Model registry and lineage against a real MLflow store (SQLite in tmp_path).

The winner is registered with signature and input example, once per set of model files;
`champion` moves only when the new model beats the current one beyond its confidence
interval; the champion loads with `mlflow.pyfunc.load_model` and predicts on new rows;
split files are logged as inputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import repo_params
from mlflow.tracking import MlflowClient
from schemas import make_schema

from reprotrain import tracking
from reprotrain.config.paths import SPLIT_FILES
from reprotrain.data import datasets, io
from reprotrain.data.features import fit_preprocessor
from reprotrain.evaluation import summary as evaluation
from reprotrain.models.model import (
    build_baseline,
    build_model,
    load_model,
    predict_rows,
    save_model,
)
from reprotrain.tracking import registry, runs


@pytest.fixture
def workspace(workdir, classification_frame: pd.DataFrame) -> dict:
    """A schema, a test split on disk and three saved models: the baseline, a real one and
    the real one with another seed (other files, the same predictions)."""
    root = workdir({})
    frame = classification_frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, test = frame.iloc[:60], frame.iloc[60:]
    schema = datasets.build_schema(frame, "label", "classification", "sklearn:blobs", None)
    preprocessor = fit_preprocessor(train, schema, repo_params.features())
    arrays = (preprocessor.transform(train), datasets.encode_target(train, schema))
    params = repo_params.parse("train", {"model": "logistic_regression"})
    models = {
        "baseline": build_baseline("classification", 3),
        "good": build_model(params, schema, 0),
        "good_seed_1": build_model(params, schema, 1),
    }
    dirs = {}
    for name, model in models.items():
        model.fit(arrays, arrays)
        dirs[name] = root / "models" / name
        save_model(model, preprocessor, dirs[name])
    SPLIT_FILES["test"].parent.mkdir(parents=True)
    test.to_parquet(SPLIT_FILES["test"], index=False)
    return {"schema": schema, "test": test, "dirs": dirs}


def _summary(workspace: dict, name: str) -> dict:
    """The parts of evaluate.json that registration reads, for model `name` as the winner."""
    test, schema = workspace["test"], workspace["schema"]
    boot = repo_params.parse("evaluate", {"bootstrap": {"n_resamples": 200}}).bootstrap
    prediction = predict_rows(load_model(workspace["dirs"][name]), test)
    y_true = datasets.encode_target(test, schema)
    scores = evaluation.scored("classification", y_true, prediction, boot, seed=0)
    return {
        "primary_metric": "accuracy",
        "bootstrap": {**boot.model_dump(), "seed": 0},
        "selected": {"model": "tuned", "reason": "test", "path": "models/tuned"},
        "test": {"tuned": scores},
    }


def _register(workspace: dict, name: str) -> dict:
    params = repo_params.parse("evaluate", {"registry": {"model_name": "blobs"}}).registry
    with tracking.stage_run("evaluate", {}) as run:
        return registry.register_winner(
            run.info.run_id,
            params,
            workspace["schema"],
            _summary(workspace, name),
            workspace["test"],
            workspace["dirs"][name],
        )


@pytest.mark.slow
def test_champion_moves_only_beyond_the_interval(workspace: dict) -> None:
    first = _register(workspace, "baseline")
    assert first["champion"] == "moved" and "no champion yet" in first["champion_reason"]

    better = _register(workspace, "good")
    assert better["champion"] == "moved", better["champion_reason"]
    assert (better["registered_version"], better["registration"]) == ("2", "new")
    assert "vs champion v1" in better["champion_reason"]
    assert "beats the champion beyond the noise" in better["champion_reason"]
    assert better["champion_comparison"] == "better"

    same = _register(workspace, "good_seed_1")
    assert (same["registered_version"], same["registration"]) == ("3", "new")
    assert same["champion"] == "kept"
    assert "vs champion v2" in same["champion_reason"]
    assert same["champion_reason"].endswith("the champion stays")
    assert same["champion_comparison"] in ("within noise", "worse")
    assert tracking.champion_version("blobs") == "2"

    client = MlflowClient()
    version = client.get_model_version("blobs", "3")
    assert version.tags["champion_decision"] == same["champion_reason"]
    assert float(version.tags["test_accuracy"]) > 0.9
    assert version.tags["test_digest"] == tracking.split_digest(SPLIT_FILES["test"])
    assert version.tags[tracking.DIGEST_TAG] == io.tree_digest(workspace["dirs"]["good_seed_1"])
    run = client.get_run(version.run_id)
    assert run.data.tags["champion"] == "kept"
    assert run.data.tags["champion_reason"] == same["champion_reason"]


@pytest.mark.slow
def test_the_same_model_files_reuse_their_version(workspace: dict, mlflow_env: str) -> None:
    # this test's store by name: MLflow's process-wide tracking URI may still be a former test's
    client = MlflowClient(tracking_uri=mlflow_env)
    _register(workspace, "baseline")
    champion = _register(workspace, "good")
    assert champion["registered_version"] == "2"

    again = _register(workspace, "good")  # the champion's files: nothing new, nothing moves
    assert (again["registered_version"], again["registration"]) == ("2", "reused")
    assert again["champion"] == "kept" and again["champion_version"] == "2"
    assert again["champion_reason"] == "v2 is the champion already (the same model files)"
    assert tracking.champion_version("blobs") == "2"
    # its tag still says why it became champion
    assert (
        client.get_model_version("blobs", "2").tags["champion_decision"]
        == (champion["champion_reason"])
    )

    old = _register(workspace, "baseline")  # an earlier version: reused, compared, kept
    assert (old["registered_version"], old["registration"]) == ("1", "reused")
    assert old["champion"] == "kept"
    assert old["champion_reason"].endswith("worse, the champion stays")
    assert (
        client.get_model_version("blobs", "1").tags["champion_decision"] == (old["champion_reason"])
    )
    versions = client.search_model_versions("name = 'blobs'")
    assert sorted(int(version.version) for version in versions) == [1, 2]
    assert tracking.find_version_by_digest("blobs", io.tree_digest(workspace["dirs"]["good"])) == (
        "2"
    )
    assert tracking.find_version_by_digest("other", io.tree_digest(workspace["dirs"]["good"])) is (
        None
    )


@pytest.mark.slow
def test_champion_loads_with_pyfunc_and_predicts_new_rows(workspace: dict) -> None:
    _register(workspace, "good")
    model = mlflow.pyfunc.load_model("models:/blobs@champion")
    signature = model.metadata.signature
    assert [spec.name for spec in signature.inputs.inputs] == ["f0", "f1", "f2"]
    assert model.metadata.saved_input_example_info is not None
    new_rows = pd.DataFrame({"f0": [0.1, 4.2, 0.0], "f1": [-0.2, 3.9, 4.1], "f2": [0.3, 0.1, 3.8]})
    predicted = model.predict(new_rows)
    assert predicted["prediction"].tolist() == [0, 1, 2]
    proba = predicted[["proba_0", "proba_1", "proba_2"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)

    # A champion that cannot score the test set (a feature renamed) is not replaced.
    renamed = workspace["test"].rename(columns={"f0": "other"})
    version, predicted, problem = registry.champion_on_test("blobs", workspace["schema"], renamed)
    assert (version, predicted) == ("1", None)
    assert "KeyError" in problem or "f0" in problem


def test_registered_name_defaults_to_the_dataset() -> None:
    schema = dataclasses.replace(make_schema(), source="sklearn:digits")
    assert tracking.registered_model_name(schema, None) == "reprotrain-digits"
    csv = dataclasses.replace(schema, source="data/my file.csv")
    assert tracking.registered_model_name(csv, None) == ("reprotrain-my-file")
    assert tracking.registered_model_name(schema, "mine") == "mine"


def test_split_record_is_from_pandas_of_the_whole_file_read_a_few_columns_at_a_time(
    tmp_path: Path, monkeypatch
) -> None:
    import warnings

    frame = pd.DataFrame(
        {
            "x": [1.0, np.nan, 3.0, 4.0],
            "n": [1, 2, 3, 4],
            "color": pd.Categorical(["a", None, "b", "a"]),
            "label": [0, 1, 0, 1],
        }
    )
    path = tmp_path / "dev.parquet"
    frame.to_parquet(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        whole = mlflow.data.from_pandas(
            pd.read_parquet(path), source=str(path.resolve()), name="blobs-dev", digest="d"
        )
    reads = []
    read_parquet = pd.read_parquet
    monkeypatch.setattr(
        pd, "read_parquet", lambda *a, **k: reads.append(k) or read_parquet(*a, **k)
    )
    monkeypatch.setattr(runs, "SCHEMA_COLUMNS_PER_READ", 3)
    record = tracking.split_dataset(path, "blobs-dev")
    assert [len(read["columns"]) for read in reads] == [3, 1]
    expected = whole._to_mlflow_entity()
    entity = record._to_mlflow_entity()
    for field in ("name", "source_type", "source", "schema", "profile"):
        assert getattr(entity, field) == getattr(expected, field), field
    assert entity.digest == tracking.split_digest(path)


def test_split_inputs_are_logged_with_name_and_digest(workspace: dict) -> None:
    path = SPLIT_FILES["test"]
    with tracking.stage_run("evaluate", {}) as run:
        tracking.log_split_inputs(workspace["schema"], {"test": path})
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert dataset.name == "blobs-test"
    assert dataset.digest == tracking.split_digest(path)
    assert len(dataset.digest) == 36
    assert {tag.key: tag.value for tag in inputs[0].tags}["mlflow.data.context"] == "test"
    assert Path(dataset.source).name != ""
