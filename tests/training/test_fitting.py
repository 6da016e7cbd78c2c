"""Splits read for training: batch by batch into one matrix, in the dtype the model uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import repo_params

from reprotrain.data import datasets, io, tables
from reprotrain.data.features import fit_preprocessor
from reprotrain.training import fitting


def mixed_split(n: int, seed: int = 0) -> pd.DataFrame:
    """Every column kind with gaps, and text with many distinct values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(10, 2, n),
            "count": rng.integers(0, 9, n).astype(np.float64),
            "color": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "code": pd.Categorical([f"c{i % 15}" for i in range(n)]),
            "member": pd.array(rng.choice([True, False], n), dtype="boolean"),
            "joined": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), "D"),
            "user": pd.Categorical([f"u{i}" for i in range(n)]),
            "label": rng.choice(["no", "yes"], n),
        }
    )
    frame.loc[::7, "amount"] = np.nan
    frame.loc[::5, "color"] = np.nan
    frame.loc[::11, "code"] = np.nan
    frame.loc[::9, "member"] = pd.NA
    frame.loc[::13, "joined"] = pd.NaT
    return frame


@pytest.fixture
def split_file(tmp_path: Path) -> tuple[Path, pd.DataFrame, dict]:
    frame = mixed_split(250)
    path = tmp_path / "train.parquet"
    io.write_parquet(path, frame)
    schema = datasets.build_schema(frame, "label", "classification", "test", None)
    return path, tables.read_frame(path), schema


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_batches_fill_one_matrix_as_one_pass_would(split_file, monkeypatch, dtype) -> None:
    path, frame, schema = split_file
    preprocessor = fit_preprocessor(frame, schema, repo_params.features())
    monkeypatch.setattr(fitting, "CHUNK_ROWS", 40)  # 250 rows: 7 batches, the last short
    features, targets = fitting.read_arrays(path, preprocessor, schema, dtype)
    assert features.dtype == dtype and features.flags.c_contiguous
    # float32 values in either dtype: what the model is trained on, it will predict from
    assert np.array_equal(features, preprocessor.transform(frame))
    assert np.array_equal(targets, datasets.encode_target(frame, schema))


def test_text_read_as_strings_whole_and_categorical_in_batches_encodes_alike(
    tmp_path: Path, monkeypatch
) -> None:
    # 20 distinct codes in 30 rows: plain text when the file is read whole (more distinct
    # values than half the rows), categorical in batches; kept (20 <= max_categories).
    frame = mixed_split(30).assign(code=pd.Categorical([f"c{i % 20}" for i in range(30)]))
    path = tmp_path / "train.parquet"
    io.write_parquet(path, frame)
    whole = tables.read_frame(path)
    assert not isinstance(whole["code"].dtype, pd.CategoricalDtype)
    preprocessor = fit_preprocessor(
        whole,
        datasets.build_schema(frame, "label", "classification", "t", None),
        repo_params.features(),
    )
    assert "code" in preprocessor.columns
    monkeypatch.setattr(fitting, "CHUNK_ROWS", 8)
    features, _ = fitting.read_arrays(path, preprocessor, preprocessor.schema)
    assert np.array_equal(features, preprocessor.transform(whole))


def test_read_batches_reads_only_the_columns_asked(split_file) -> None:
    path, frame, _ = split_file
    batches = list(tables.read_batches(path, ["amount", "label"], rows=100))
    assert [len(batch) for batch in batches] == [100, 100, 50]
    assert all(list(batch.columns) == ["amount", "label"] for batch in batches)


def test_a_file_without_rows_is_one_empty_batch(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    io.write_parquet(path, mixed_split(10).head(0))
    (batch,) = tables.read_batches(path, ["amount"])
    assert batch.empty and list(batch.columns) == ["amount"]


def test_transform_into_a_matrix_of_the_wrong_shape_is_refused(split_file) -> None:
    _, frame, schema = split_file
    preprocessor = fit_preprocessor(frame, schema, repo_params.features())
    with pytest.raises(ValueError, match=r"out must have the shape \(250, \d+\)"):
        preprocessor.transform(frame, out=np.empty((3, 2)))
