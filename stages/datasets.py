"""Data sources and the schema that travels with them.

A source is `sklearn:<name>` (a dataset bundled with scikit-learn, no download) or a
local CSV/Parquet file with a named target column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.errors import UserError

SKLEARN_DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
FILE_SUFFIXES = (".csv", ".parquet")
SKLEARN_TARGET = "target"
# An integer target with at most this many distinct values is taken as class labels.
MAX_INFERRED_CLASSES = 50


def load_source(source: str, target: str | None) -> tuple[pd.DataFrame, str, list[int] | None]:
    """Load a source into a frame; return it, its target column and an image shape."""
    if source.startswith("sklearn:"):
        return _load_sklearn(source.removeprefix("sklearn:"))
    return _load_file(Path(source), target), str(target), None


def _load_sklearn(name: str) -> tuple[pd.DataFrame, str, list[int] | None]:
    if name not in SKLEARN_DATASETS:
        allowed = ", ".join(f"sklearn:{known}" for known in SKLEARN_DATASETS)
        raise UserError(
            f"params.yaml: prepare.source: unknown dataset 'sklearn:{name}'; "
            f"allowed: {allowed} or a path to a .csv/.parquet file"
        )
    from sklearn import datasets as sk_datasets

    bunch = getattr(sk_datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    # Column names become Parquet/MLflow keys: keep them plain.
    frame.columns = [str(column).replace(" ", "_") for column in frame.columns]
    image_shape = [1, 8, 8] if name == "digits" else None
    return frame, SKLEARN_TARGET, image_shape


def _load_file(path: Path, target: str | None) -> pd.DataFrame:
    if path.suffix not in FILE_SUFFIXES:
        raise UserError(
            f"params.yaml: prepare.source: unsupported file type {path.suffix!r} for {path}; "
            f"allowed: sklearn:<name>, {', '.join(FILE_SUFFIXES)}"
        )
    if target is None:
        raise UserError(
            f"params.yaml: prepare.target: a target column name is required for file "
            f"source {path}, got null"
        )
    if not path.is_file():
        raise UserError(f"{path}: data file not found (prepare.source)")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty; expected a {path.suffix} table with a header")
    try:
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the user's file
        kind = path.suffix.lstrip(".").upper()
        raise UserError(f"{path}: not a valid {kind} file ({type(exc).__name__})") from None
    if frame.empty:
        raise UserError(f"{path}: file has no data rows")
    return frame


def infer_task(target: pd.Series, requested: str) -> str:
    """'classification' or 'regression'; `requested` wins unless it is 'auto'."""
    if requested != "auto":
        return requested
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    if pd.api.types.is_integer_dtype(target) and target.nunique() <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def validate(frame: pd.DataFrame, target: str, task: str, source: str) -> None:
    """Reject data that no stage could train on, naming the column and the problem."""
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:10]))
        raise UserError(f"{source}: target column {target!r} not found; columns are: {columns}")
    missing = int(frame[target].isna().sum())
    if missing:
        raise UserError(f"{source}: target column {target!r} has {missing} missing values")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise UserError(f"{source}: no feature columns besides target {target!r}")
    for column in features.columns:
        series = features[column]
        if series.isna().all():
            raise UserError(f"{source}: column {column!r} is entirely empty")
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            raise UserError(
                f"{source}: column {column!r} must be numeric, got non-numeric value "
                f"{bad.iloc[0]!r}"
            )
    if task == "classification":
        n_classes = frame[target].nunique()
        if n_classes < 2:
            raise UserError(
                f"{source}: classification target {target!r} needs at least 2 classes, "
                f"got {n_classes}"
            )
    elif not pd.api.types.is_numeric_dtype(frame[target]):
        raise UserError(f"{source}: regression target {target!r} must be numeric")


def build_schema(
    frame: pd.DataFrame, target: str, task: str, source: str, image_shape: list[int] | None
) -> dict[str, Any]:
    """The schema JSON: features and types, target, task, class labels, image shape."""
    features = [
        {"name": str(column), "dtype": str(frame[column].dtype)}
        for column in frame.columns
        if column != target
    ]
    classes = None
    if task == "classification":
        classes = [_plain(value) for value in sorted(frame[target].unique())]
    return {
        "source": source,
        "target": target,
        "task": task,
        "features": features,
        "classes": classes,
        "image_shape": image_shape,
        "n_rows": len(frame),
    }


def feature_frame(frame: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    """Only the schema's feature columns, in schema order."""
    return frame[[feature["name"] for feature in schema["features"]]]


def encode_target(frame: pd.DataFrame, schema: dict[str, Any]) -> np.ndarray:
    """The target as class indices (int64) or floats (float32)."""
    target = frame[schema["target"]]
    if schema["task"] == "classification":
        index = {label: position for position, label in enumerate(schema["classes"])}
        return np.array([index[_plain(value)] for value in target], dtype=np.int64)
    return target.to_numpy(dtype=np.float32)


def _plain(value: Any) -> Any:
    """numpy scalars to plain Python values, so they survive JSON."""
    return value.item() if isinstance(value, np.generic) else value
