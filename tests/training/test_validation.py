"""Scoring before the test set: the dev split, or cross-validation folds over train+dev."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import repo_params
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from reprotrain import metrics
from reprotrain.config import paths
from reprotrain.data import datasets, folds, io
from reprotrain.data.schema import Schema
from reprotrain.models.model import build_baseline
from reprotrain.training.validation import CrossValidation, Holdout, load_validation

TRAIN = {"model": "logistic_regression", "seeds": [0], "progress": "off"}


def write_splits(root, frame: pd.DataFrame, codes: np.ndarray | None) -> Schema:
    schema = datasets.build_schema(frame, "label", "classification", "synthetic", None)
    schema.write(root / paths.SCHEMA)
    dev_rows = frame.index % 4 == 0
    io.write_parquet(root / paths.SPLIT_FILES["train"], frame[~dev_rows])
    io.write_parquet(root / paths.SPLIT_FILES["dev"], frame[dev_rows])
    folds.write(root / paths.FOLDS, codes)
    return schema


def development(frame: pd.DataFrame) -> pd.DataFrame:
    dev_rows = frame.index % 4 == 0
    return pd.concat([frame[~dev_rows], frame[dev_rows]], ignore_index=True)


def test_without_folds_the_dev_split_scores(workdir, classification_frame) -> None:
    root = workdir({})
    schema = write_splits(root, classification_frame, None)
    _, validation = load_validation(schema, ["logistic_regression"])
    assert isinstance(validation, Holdout)
    assert validation.describe() == {"method": "holdout", "train_rows": 67, "dev_rows": 23}


def test_torch_models_keep_the_dev_split_even_with_folds(workdir, classification_frame) -> None:
    root = workdir({})
    schema = write_splits(root, classification_frame, folds.fold_codes(90, None, 5, 1, 0))
    _, validation = load_validation(schema, ["hist_gradient_boosting", "mlp"])
    assert isinstance(validation, Holdout)  # nets early-stop on dev


def test_cross_validation_scores_out_of_fold_and_refits_on_all(
    workdir, classification_frame
) -> None:
    root = workdir({})
    rows = development(classification_frame)
    labels = rows["label"].to_numpy()
    codes = folds.fold_codes(90, labels, 3, 2, seed=0)
    schema = write_splits(root, classification_frame, codes)
    preprocessor, validation = load_validation(schema, ["logistic_regression"])
    assert isinstance(validation, CrossValidation)
    assert len(validation.folds) == 6  # 3 folds x 2 repeats
    params = repo_params.section("train", **TRAIN)
    steps: list[dict[str, float]] = []
    fitted = validation.fit(params, schema, seed=0, on_epoch=steps.append)

    assert fitted.dev_folds is not None and len(fitted.dev_folds) == 6
    mean = np.mean([row["accuracy"] for row in fitted.dev_folds])
    assert fitted.dev_scores["accuracy"] == pytest.approx(mean)
    assert len(steps) == 6  # a row after each fold: the running means a pruner sees
    assert steps[-1]["dev_score"] == pytest.approx(mean) == fitted.history[0]["dev_score"]
    assert len(fitted.history) == 1  # fitted in one go, as without folds

    # out of fold: each row predicted by a model fitted on the other folds of repeat 1
    features = rows[["f0", "f1", "f2"]].to_numpy()
    held_out = codes[:, 0] == 0
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    reference.fit(features[~held_out], labels[~held_out])
    oof_labels, oof_proba = fitted.oof
    assert np.array_equal(oof_labels[held_out], reference.predict(features[held_out]))
    assert oof_proba.shape == (90, 3)

    # the model returned is refit on all 90 train+dev rows
    reference.fit(features, labels)
    matrix = preprocessor.transform(rows)
    np.testing.assert_allclose(
        fitted.model.predict_proba(matrix), reference.predict_proba(features), atol=1e-4
    )
    assert validation.describe()["refit_rows"] == 90


def test_baselines_are_cross_validated_too(workdir, classification_frame) -> None:
    root = workdir({})
    codes = folds.fold_codes(90, None, 5, 1, seed=0)
    schema = write_splits(root, classification_frame, codes)
    _, validation = load_validation(schema, ["logistic_regression"])
    model, scores = validation.fit_baseline(
        lambda: build_baseline("classification", 3), "classification"
    )
    # the majority class of 4/5 of 90 rows, 30 a class: about a third on every fold
    assert 0.2 < scores["dev"]["accuracy"] < 0.45
    assert len(model.predict(validation.development[0])) == 90


def test_the_error_analysis_covers_every_row_out_of_fold(workdir, classification_frame) -> None:
    root = workdir({})
    codes = folds.fold_codes(90, None, 5, 1, seed=0)
    schema = write_splits(root, classification_frame, codes)
    _, validation = load_validation(schema, ["logistic_regression"])
    fitted = validation.fit(repo_params.section("train", **TRAIN), schema, seed=0)
    analysis = validation.errors(schema, fitted)
    table = analysis[paths.CV_PREDICTIONS]
    assert len(table) == 90 and list(table.columns[:2]) == ["actual", "predicted"]
    assert analysis["summary.json"]["n_dev"] == 90
    pooled = metrics.scores("classification", table["actual"], table["predicted"], None)
    assert pooled["accuracy"] == pytest.approx(float((fitted.oof[0] == validation.y_dev).mean()))
