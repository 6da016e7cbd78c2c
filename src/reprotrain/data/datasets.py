"""Data sources and the schema that travels with them.

A source is `sklearn:<name>` (a dataset bundled with scikit-learn, no download), a local
CSV, Parquet or JSON Lines file with a named target column, or a folder of images with
one subfolder per class. Feature columns are numeric, bool, date or text (category);
see `reprotrain/data/tables.py`.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotrain.config.errors import UserError, brief
from reprotrain.data import tables
from reprotrain.data.schema import Feature, Schema

SKLEARN_DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
FILE_SUFFIXES = tuple(tables.FORMATS)
SKLEARN_TARGET = "target"
IMAGE_TARGET = "label"
# An integer target with at most this many distinct values is taken as class labels.
MAX_INFERRED_CLASSES = 50


def load_source(
    source: str,
    target: str | None,
    column_types: dict[str, str] | None = None,
    image_size: tuple[int, int] = (32, 32),
    image_mode: str = "rgb",
) -> tuple[pd.DataFrame, str, list[int] | None]:
    """Load a source into a frame; return it, its target column and an image shape."""
    if source.startswith("sklearn:"):
        return _load_sklearn(source.removeprefix("sklearn:"))
    path = Path(source)
    if path.is_dir():
        from reprotrain.data.images import load_image_folder

        target = target or IMAGE_TARGET
        frame, shape = load_image_folder(path, target, image_size, image_mode)
        return frame, target, shape
    return _load_file(path, target, column_types), str(target), None


def _load_sklearn(name: str) -> tuple[pd.DataFrame, str, list[int] | None]:
    if name not in SKLEARN_DATASETS:
        allowed = ", ".join(f"sklearn:{known}" for known in SKLEARN_DATASETS)
        raise UserError(
            f"params.yaml: prepare.source: unknown dataset 'sklearn:{name}'; "
            f"allowed: {allowed} or a path to a .csv/.parquet file, a .jsonl file or an "
            "image folder"
        )
    from sklearn import datasets as sk_datasets

    bunch = getattr(sk_datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    # Column names become Parquet/MLflow keys: keep them plain.
    frame.columns = [str(column).replace(" ", "_") for column in frame.columns]
    image_shape = [1, 8, 8] if name == "digits" else None
    return frame, SKLEARN_TARGET, image_shape


def _load_file(path: Path, target: str | None, column_types: dict[str, str] | None):
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise UserError(
            f"params.yaml: prepare.source: unsupported file type {path.suffix!r} for {path}; "
            f"allowed: sklearn:<name>, {', '.join(FILE_SUFFIXES)} or an image folder"
        )
    if target is None:
        raise UserError(
            f"params.yaml: prepare.target: a target column name is required for file "
            f"source {path}, got null"
        )
    return tables.read_table(path, column_types)


def infer_task(target: pd.Series, requested: str) -> str:
    """'classification' or 'regression'; `requested` wins unless it is 'auto'."""
    if requested != "auto":
        return requested
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    values = target.dropna()
    integral = pd.api.types.is_integer_dtype(target) or bool(
        len(values) and np.all(np.mod(values.to_numpy(dtype=np.float64), 1) == 0)
    )
    if integral and values.nunique() <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def drop_missing_target(frame: pd.DataFrame, target: str, drop: bool) -> tuple[pd.DataFrame, int]:
    """Rows without a target removed when `drop` (prepare.drop_missing_target); how many."""
    if not drop or target not in frame.columns:
        return frame, 0
    missing = frame[target].isna()
    count = int(missing.sum())
    if count:
        frame = frame.loc[~missing.to_numpy()].reset_index(drop=True)
    return frame, count


def validate(
    frame: pd.DataFrame, target: str, task: str, source: str, declared: Collection[str] = ()
) -> None:
    """Reject data that no stage could train on, naming the column and the problem.

    `declared` names columns whose kind params set (prepare.column_types): they are
    already converted and are not second-guessed.
    """
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:10]))
        raise UserError(f"{source}: target column {target!r} not found; columns are: {columns}")
    missing = int(frame[target].isna().sum())
    if missing:
        raise UserError(
            f"{source}: target column {target!r} has {missing} missing values; allowed: "
            "none, or set prepare.drop_missing_target: true to drop those rows"
        )
    values = frame[target]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        infinite = int(np.isinf(values.to_numpy(dtype=np.float64)).sum())
        if infinite:
            raise UserError(
                f"{source}: target column {target!r} has {infinite} infinite values (inf or "
                "-inf); allowed: finite numbers; remove or fix those rows"
            )
    features = [column for column in frame.columns if column != target]
    if not features:
        raise UserError(f"{source}: no feature columns besides target {target!r}")
    for column in features:
        series = frame[column]
        if series.isna().all():
            raise UserError(
                f"{source}: column {column!r} is entirely empty; allowed: a column with at "
                "least one value"
            )
        if column in declared:
            continue
        numeric_text = tables.numeric_text_value(series)
        if numeric_text is not None:
            value, row = numeric_text
            raise UserError(
                f"{source}: column {column!r} must be numeric, got non-numeric value "
                f"{value!r} (row {row}); if it is text, set prepare.column_types.{column}: "
                "category"
            )
    if task == "classification":
        n_classes = frame[target].nunique()
        if n_classes < 2:
            raise UserError(
                f"{source}: classification target {target!r} needs at least 2 classes, "
                f"got {n_classes}"
            )
    elif not pd.api.types.is_numeric_dtype(frame[target]) or pd.api.types.is_bool_dtype(
        frame[target]
    ):
        raise UserError(f"{source}: regression target {target!r} must be numeric")


def build_schema(
    frame: pd.DataFrame, target: str, task: str, source: str, image_shape: list[int] | None
) -> Schema:
    """Features (name, dtype, kind), target, task, classes, image shape, row count."""
    features = tuple(
        Feature(str(column), str(frame[column].dtype), tables.kind_of(frame[column]))
        for column in frame.columns
        if column != target
    )
    classes = None
    if task == "classification":
        classes = [_plain(value) for value in sorted(frame[target].dropna().unique().tolist())]
    return Schema(source, target, task, features, classes, image_shape, len(frame))


def feature_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Only the schema's feature columns, in schema order, in plain dtypes.

    Text and bool columns become Python objects (None where missing) and integers become
    floats, as a JSON client would send them: MLflow signatures inferred from this frame
    accept new data with gaps anywhere.
    """
    columns = {}
    for name in schema.feature_names:
        series = frame[name]
        if isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(
            series.dtype
        ):
            series = series.astype(object).where(series.notna(), None)
        elif pd.api.types.is_integer_dtype(series.dtype):
            series = series.astype(np.float64)
        columns[name] = series
    return pd.DataFrame(columns, index=frame.index)


def example_frame(path: Path, schema: Schema, rows: int = 5) -> pd.DataFrame:
    """The first rows of a split file as `feature_frame`: an input example for MLflow."""
    return feature_frame(tables.read_head(path, rows), schema)


def encode_target(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """The target as class indices (int64) or floats (float32)."""
    target = frame[schema.target]
    if schema.task != "classification":
        return target.to_numpy(dtype=np.float32)
    classes = schema.labels
    values = target.astype(object) if isinstance(target.dtype, pd.CategoricalDtype) else target
    codes = pd.Categorical(values, categories=classes).codes.astype(np.int64)
    if (codes < 0).any():
        unknown = target.iloc[int(np.flatnonzero(codes < 0)[0])]
        raise UserError(
            f"target column {schema.target!r}: label {_plain(unknown)!r} is not one of "
            f"the schema classes {brief(classes, 10)}"
        )
    return codes


def _plain(value: Any) -> Any:
    """numpy scalars to plain Python values, so they survive JSON."""
    return value.item() if isinstance(value, np.generic) else value
