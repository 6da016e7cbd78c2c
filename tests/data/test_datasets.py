"""Sources, task inference, validation and arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprotrain.config.errors import UserError
from reprotrain.data import datasets
from reprotrain.data.schema import Schema


@pytest.mark.parametrize(
    ("name", "rows", "features", "image_shape"),
    [
        pytest.param("digits", 1797, 64, [1, 8, 8], id="digits"),
        pytest.param("iris", 150, 4, None, id="iris"),
        pytest.param("wine", 178, 13, None, id="wine"),
        pytest.param("breast_cancer", 569, 30, None, id="breast_cancer"),
        pytest.param("diabetes", 442, 10, None, id="diabetes"),
    ],
)
def test_sklearn_sources(name: str, rows: int, features: int, image_shape) -> None:
    frame, target, shape = datasets.load_source(f"sklearn:{name}", None)
    assert target == "target"
    assert frame.shape == (rows, features + 1)
    assert shape == image_shape
    assert not any(" " in column for column in frame.columns)


def test_unknown_sklearn_source_lists_allowed() -> None:
    with pytest.raises(
        UserError,
        match=r"prepare\.source: unknown dataset 'sklearn:mnist'; allowed: sklearn:digits, "
        r"sklearn:iris, .* or a path to a \.csv/\.parquet file",
    ):
        datasets.load_source("sklearn:mnist", None)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"], ids=["csv", "parquet"])
def test_file_sources_roundtrip(tmp_path: Path, classification_frame, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        classification_frame.to_csv(path, index=False)
    else:
        classification_frame.to_parquet(path, index=False)
    frame, target, shape = datasets.load_source(str(path), "label")
    assert target == "label"
    assert shape is None
    pd.testing.assert_frame_equal(frame, classification_frame, check_exact=False)


@pytest.mark.parametrize(
    ("filename", "content", "target", "message"),
    [
        pytest.param(
            "missing.csv", None, "label", r"missing\.csv: data file not found", id="missing-file"
        ),
        pytest.param("empty.csv", b"", "label", r"empty\.csv: file is empty", id="empty-file"),
        pytest.param(
            "header.csv",
            b"a,b,label\n",
            "label",
            r"header\.csv: file has no data rows",
            id="no-rows",
        ),
        pytest.param(
            "bad.csv",
            b'a,b\n1,"unterminated\n',
            "label",
            r"bad\.csv: not a valid CSV file \(",
            id="invalid-csv",
        ),
        pytest.param(
            "bad.parquet",
            b"this is not parquet",
            "label",
            r"bad\.parquet: not a valid PARQUET file \(",
            id="invalid-parquet",
        ),
        pytest.param(
            "data.xlsx",
            b"x",
            "label",
            r"prepare\.source: unsupported file type '\.xlsx'.*allowed: sklearn:<name>, \.csv, "
            r"\.parquet",
            id="unsupported-suffix",
        ),
        pytest.param(
            "data.csv",
            b"a,label\n1,0\n",
            None,
            r"prepare\.target: a target column name is required .*got null",
            id="no-target-name",
        ),
    ],
)
def test_file_source_errors(
    tmp_path: Path, filename: str, content: bytes | None, target: str | None, message: str
) -> None:
    path = tmp_path / filename
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        datasets.load_source(str(path), target)


@pytest.mark.parametrize(
    ("values", "requested", "expected"),
    [
        pytest.param([0, 1, 2, 1], "auto", "classification", id="few-ints"),
        pytest.param(["a", "b", "a"], "auto", "classification", id="strings"),
        pytest.param([True, False, True], "auto", "classification", id="bools"),
        pytest.param([0.5, 1.5, 2.25], "auto", "regression", id="floats"),
        pytest.param(list(range(100)), "auto", "regression", id="many-ints"),
        pytest.param([0, 1, 2, 1], "regression", "regression", id="override-regression"),
        pytest.param([0.5, 1.5], "classification", "classification", id="override-class"),
    ],
)
def test_infer_task(values: list, requested: str, expected: str) -> None:
    assert datasets.infer_task(pd.Series(values), requested) == expected


def _frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


@pytest.mark.parametrize(
    ("frame", "task", "message"),
    [
        pytest.param(
            _frame(a=[1, 2], b=[3, 4]),
            "classification",
            r"src: target column 'label' not found; columns are: a, b",
            id="missing-target",
        ),
        pytest.param(
            _frame(a=[1.0, 2.0, 3.0], label=[0, None, 1]),
            "classification",
            r"src: target column 'label' has 1 missing values",
            id="target-nan",
        ),
        pytest.param(
            _frame(a=[1.0, 2.0, 3.0, 4.0], label=[0.5, float("inf"), -float("inf"), 1.0]),
            "regression",
            r"src: target column 'label' has 2 infinite values \(inf or -inf\); allowed: finite",
            id="target-inf",
        ),
        pytest.param(
            _frame(label=[0, 1]),
            "classification",
            r"src: no feature columns besides target 'label'",
            id="no-features",
        ),
        pytest.param(
            _frame(a=[1.0, None], b=[None, None], label=[0, 1]),
            "classification",
            r"src: column 'b' is entirely empty",
            id="empty-column",
        ),
        pytest.param(
            _frame(a=["1", "x2", "3"], label=[0, 1, 0]),
            "classification",
            r"src: column 'a' must be numeric, got non-numeric value 'x2'",
            id="non-numeric-column",
        ),
        pytest.param(
            _frame(a=[1, 2, 3], label=[1, 1, 1]),
            "classification",
            r"src: classification target 'label' needs at least 2 classes, got 1",
            id="one-class",
        ),
        pytest.param(
            _frame(a=[1, 2], label=["x", "y"]),
            "regression",
            r"src: regression target 'label' must be numeric",
            id="regression-non-numeric-target",
        ),
    ],
)
def test_validate_errors(frame: pd.DataFrame, task: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        datasets.validate(frame, "label", task, "src")


def test_validate_accepts_good_frames(classification_frame, regression_frame) -> None:
    datasets.validate(classification_frame, "label", "classification", "src")
    datasets.validate(regression_frame, "y", "regression", "src")


def test_schema_and_target_classification(classification_frame) -> None:
    frame = classification_frame.assign(label=classification_frame["label"].map({0: 5, 1: 7, 2: 9}))
    schema = datasets.build_schema(frame, "label", "classification", "src", None)
    assert schema.classes == [5, 7, 9]
    assert schema.feature_names == ["f0", "f1", "f2"]
    assert schema.n_rows == 90
    assert Schema.from_json(json.loads(json.dumps(schema.to_json()))) == schema
    labels = datasets.encode_target(frame, schema)
    assert labels.dtype == np.int64
    assert np.array_equal(labels, classification_frame["label"].to_numpy())


def test_schema_and_target_regression(regression_frame) -> None:
    schema = datasets.build_schema(regression_frame, "y", "regression", "src", None)
    assert schema.classes is None and schema.task == "regression"
    target = datasets.encode_target(regression_frame, schema)
    assert target.dtype == np.float32
    assert np.allclose(target, regression_frame["y"].to_numpy(), atol=1e-5)


def test_feature_frame_keeps_schema_order(classification_frame) -> None:
    schema = datasets.build_schema(classification_frame, "label", "classification", "src", None)
    shuffled = classification_frame[["label", "f2", "f0", "f1"]]
    assert list(datasets.feature_frame(shuffled, schema).columns) == ["f0", "f1", "f2"]
