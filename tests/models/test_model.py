"""Every model fits, predicts, saves and loads; untrusted or broken files are refused."""

from __future__ import annotations

import fractions
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import repo_params
import torch
from schemas import make_schema

from reprotrain import config, metrics
from reprotrain.config.errors import UserError
from reprotrain.data import datasets
from reprotrain.data.features import fit_preprocessor
from reprotrain.models.model import build_baseline, build_model, input_dtype, load_model, save_model


def _prepared(frame: pd.DataFrame, target: str, task: str) -> tuple[dict[str, Any], Any, tuple]:
    schema = datasets.build_schema(frame, target, task, "test", None)
    preprocessor = fit_preprocessor(frame, schema, repo_params.features())
    arrays = (preprocessor.transform(frame), datasets.encode_target(frame, schema))
    return schema, preprocessor, arrays


def _train_params(model: str) -> config.TrainParams:
    return repo_params.parse(
        "train",
        {
            "model": model,
            "device": "cpu",
            "mlp": {"hidden_sizes": [16], "dropout": 0.0},
            "optim": {"lr": 0.01, "batch_size": 16, "epochs": 30},
        },
    )


FRAMES = {
    "classification": ("classification_frame", "label"),
    "regression": ("regression_frame", "y"),
}


def _data(request: pytest.FixtureRequest, task: str) -> tuple[dict[str, Any], Any, tuple]:
    fixture, target = FRAMES[task]
    return _prepared(request.getfixturevalue(fixture), target, task)


def _fitted(model_name: str, frame_data) -> tuple[Any, Any, Any, tuple]:
    schema, preprocessor, arrays = frame_data
    model = build_model(_train_params(model_name), schema, seed=0)
    model.fit(arrays, arrays)
    return model, schema, preprocessor, arrays


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model_name", "task"),
    [
        pytest.param("mlp", "classification", id="mlp-classification"),
        pytest.param("mlp", "regression", id="mlp-regression"),
        pytest.param("logistic_regression", "classification", id="logistic_regression"),
        pytest.param("linear_regression", "regression", id="linear_regression"),
    ],
)
def test_model_fits_predicts_saves_and_loads(
    workdir, request: pytest.FixtureRequest, model_name: str, task: str
) -> None:
    directory = workdir()
    model, schema, preprocessor, (features, targets) = _fitted(model_name, _data(request, task))

    predicted = model.predict(features)
    assert predicted.shape == (len(features),)
    score = metrics.scores(task, targets, predicted)[metrics.PRIMARY[task]]
    assert score > 0.9  # well-separated classes / a nearly linear target
    proba = model.predict_proba(features)
    if task == "classification":
        assert proba.shape == (len(features), 3)
        assert np.allclose(proba.sum(axis=1), 1.0)
    else:
        assert proba is None

    save_model(model, preprocessor, directory / "saved")
    loaded = load_model(directory / "saved")
    assert (loaded.name, loaded.task) == (model_name, task)
    assert loaded.preprocessor.columns == preprocessor.columns
    assert np.allclose(loaded.predict(features), predicted)
    if task == "classification":
        assert np.allclose(loaded.predict_proba(features), proba)


@pytest.mark.parametrize(
    ("task", "frame_name", "target"),
    [("classification", "classification_frame", "label"), ("regression", "regression_frame", "y")],
    ids=["majority-class", "mean"],
)
def test_baseline_predicts_majority_or_mean(
    tmp_path: Path, task: str, frame_name: str, target: str, request: pytest.FixtureRequest
) -> None:
    frame = request.getfixturevalue(frame_name)
    frame = frame.iloc[:70]  # classification: 30, 30, 10 -> majority is class 0
    schema, preprocessor, (features, targets) = _prepared(frame, target, task)
    baseline = build_baseline(task, schema.n_classes)
    baseline.fit((features, targets), (features, targets))
    expected = 0 if task == "classification" else targets.mean()
    assert np.allclose(baseline.predict(features), expected, atol=1e-5)

    save_model(baseline, preprocessor, tmp_path / "baseline")
    assert np.allclose(load_model(tmp_path / "baseline").predict(features), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("model_name", "task", "message"),
    [
        pytest.param(
            "logistic_regression",
            "regression",
            r"train\.model: logistic_regression needs a classification task",
            id="logistic-on-regression",
        ),
        pytest.param(
            "linear_regression",
            "classification",
            r"train\.model: linear_regression needs a regression task",
            id="linear-on-classification",
        ),
    ],
)
def test_model_task_mismatch(model_name: str, task: str, message: str) -> None:
    schema = make_schema(task, [0, 1] if task == "classification" else None)
    with pytest.raises(UserError, match=message):
        build_model(_train_params(model_name), schema, seed=0)


def test_torch_model_is_seeded(workdir, classification_frame) -> None:
    workdir()
    frame_data = _prepared(classification_frame, "label", "classification")
    first = _fitted("mlp", frame_data)[0]
    again = _fitted("mlp", frame_data)[0]
    features = frame_data[2][0]
    assert np.array_equal(first.predict_proba(features), again.predict_proba(features))


@pytest.mark.parametrize(
    "model_name", ["logistic_regression", "random_forest", "hist_gradient_boosting", "mlp"]
)
def test_models_fitted_alike_save_to_identical_files(
    workdir, classification_frame, model_name: str
) -> None:
    """Every file of the directory (skops or torch weights, model.json, preprocessor,
    schema) has the same bytes, so a rerun of train leaves DVC's hash of it unchanged; both
    copies load through the allow-list and predict the same."""
    directory = workdir()
    frame_data = _prepared(classification_frame, "label", "classification")
    features = frame_data[2][0]
    saved = {}
    for copy in ("first", "again"):
        model = _fitted(model_name, frame_data)[0]
        save_model(model, frame_data[1], directory / copy)
        saved[copy] = {path.name: path.read_bytes() for path in (directory / copy).iterdir()}
    assert saved["first"] == saved["again"]
    weights = "weights.pt" if model_name == "mlp" else "model.skops"
    assert {weights, "model.json", "preprocessor.skops", "schema.json"} <= saved["first"].keys()
    expected = model.predict_proba(features)
    for copy in ("first", "again"):
        assert np.array_equal(load_model(directory / copy).predict_proba(features), expected)


class _RunsCode:
    """Unpickling this calls os.system: what a malicious weights file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def saved_models(workdir, classification_frame) -> dict[str, Path]:
    directory = workdir()
    frame_data = _prepared(classification_frame, "label", "classification")
    paths = {}
    for name in ("mlp", "logistic_regression"):
        model, _, preprocessor, _ = _fitted(name, frame_data)
        paths[name] = directory / name
        save_model(model, preprocessor, paths[name])
    return paths


def test_malicious_pickle_as_weights_is_refused(saved_models, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    weights = saved_models["mlp"] / "weights.pt"
    torch.save({"0.mean": _RunsCode(marker)}, weights)
    with pytest.raises(UserError, match=r"weights\.pt: refusing to load; the file holds objects"):
        load_model(saved_models["mlp"])
    assert not marker.exists()


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        pytest.param({"f": os.system}, r"(posix|nt)\.system", id="function"),
        pytest.param({"f": eval}, r"builtins\.eval", id="builtin-function"),
        pytest.param(fractions.Fraction(1, 3), r"fractions\.Fraction", id="non-sklearn-object"),
    ],
)
def test_untrusted_type_in_skops_file_is_refused(saved_models, payload: Any, shown: str) -> None:
    import skops.io as sio

    sio.dump(payload, saved_models["logistic_regression"] / "model.skops")
    with pytest.raises(
        UserError,
        match=r"model\.skops: refusing to load; it holds types outside the allow-list .*" + shown,
    ):
        load_model(saved_models["logistic_regression"])


@pytest.mark.parametrize(
    ("name", "filename"),
    [("mlp", "weights.pt"), ("logistic_regression", "model.skops")],
    ids=["torch", "sklearn"],
)
def test_truncated_model_file_is_refused(saved_models, name: str, filename: str) -> None:
    path = saved_models[name] / filename
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match=rf"{filename}: corrupt or unreadable model file \("):
        load_model(saved_models[name])


def test_directory_without_model_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not a model directory \(no model\.json\)"):
        load_model(tmp_path)


def test_gradient_boosting_takes_unscaled_float64_as_is() -> None:
    """Trees need no scaling, and float64 is what HistGradientBoosting computes in: the
    matrix the preprocessor fills is the one the estimator uses, without a copy."""
    from sklearn.preprocessing import StandardScaler

    schema = make_schema("classification", [0, 1, 2])
    trees = build_model(_train_params("hist_gradient_boosting"), schema, seed=0)
    assert input_dtype("hist_gradient_boosting") == np.float64
    assert not any(isinstance(step, StandardScaler) for step in trees.estimator)
    linear = build_model(_train_params("logistic_regression"), schema, seed=0)
    assert input_dtype("logistic_regression") == np.float32
    assert isinstance(linear.estimator[0], StandardScaler)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_torch_model_trains_on_the_matrix_itself(
    request: pytest.FixtureRequest, monkeypatch, task: str
) -> None:
    """A float32 matrix reaches the network as a view of the same memory, not a copy."""
    from reprotrain.models import torch_loop as training

    schema, _, (features, targets) = _data(request, task)
    model = build_model(_train_params("mlp"), schema, seed=0)
    seen = []
    original = training.fit

    def spy(net, loss_fn, score_fn, train, *args, **kwargs):
        seen.append(train[0])
        return original(net, loss_fn, score_fn, train, *args, **kwargs)

    monkeypatch.setattr(training, "fit", spy)
    model.fit((features, targets), (features, targets))
    assert features.dtype == np.float32
    assert np.shares_memory(seen[0].numpy(), features)
