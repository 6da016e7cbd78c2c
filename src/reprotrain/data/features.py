"""Feature preprocessing, fit on the training split only and saved with every model.

A scikit-learn `ColumnTransformer` imputes, scales and encodes the schema's feature
columns; dev, test and new data go through the same fitted transform as train, so
nothing of their distribution leaks into training. Before it, each column is turned into
numbers by its kind (see `reprotrain/data/tables.py`):

- numeric: as is; bool: 1.0 / 0.0;
- date: five numeric columns `<name>__year`, `__month`, `__day`, `__weekday` (Monday 0)
  and `__epoch_days` (days since 1970-01-01, fractional for timestamps);
- category (text): one-hot (or ordinal) codes; missing is a category of its own, rare
  categories are grouped, unseen ones are encoded as "infrequent" (or all zeros / -1)
  instead of failing.

Text columns that look like identifiers (nearly one value per row) are dropped with a
logged reason; `features.exclude` drops columns by name. The directory a preprocessor is
saved to also gets the schema (`schema.json`), so a model directory alone is enough to
check and predict new data.
"""

from __future__ import annotations

import importlib
import json
import logging
import zipfile
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from reprotrain.config.errors import UserError
from reprotrain.data import io, tables
from reprotrain.data.schema import Schema

log = logging.getLogger(__name__)

FILE = "preprocessor.skops"
SCHEMA_FILE = "schema.json"
# skops must not build anything that is not plainly data or a scikit-learn estimator:
# a type is trusted if it is a class (never a function) under these packages ...
TRUSTED_PACKAGES = ("sklearn", "numpy", "builtins")
# ... or named here (types skops itself reports as untrusted in our own files).
TRUSTED_TYPES = frozenset({"numpy.dtype"})
# What every member of a skops file we write carries instead of the time it was written:
# the earliest date a zip entry can hold.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SKOPS_SCHEMA = "schema.json"  # the member of a skops file that describes the object
DATE_PARTS = ("year", "month", "day", "weekday", "epoch_days")
MISSING = "__missing__"
CHUNK_ROWS = 1 << 16  # transform in row chunks: bounded temporary memory
NUMERIC_PART = 8  # numeric columns fitted together (bounds the memory a fit borrows)


class Preprocessor:
    """Feature columns of a frame -> a float32 matrix."""

    def __init__(
        self,
        transformer: Any,
        columns: list[str],
        kinds: dict[str, str] | None = None,
        dropped: dict[str, str] | None = None,
        schema: Schema | None = None,
    ):
        self.transformer, self.columns = transformer, columns
        self.kinds = kinds or dict.fromkeys(columns, "numeric")
        self.dropped = dropped or {}
        self.schema = schema

    @property
    def feature_names(self) -> list[str]:
        return [str(name) for name in self.transformer.get_feature_names_out()]

    def transform(
        self, frame: pd.DataFrame, where: str = "input", out: np.ndarray | None = None
    ) -> np.ndarray:
        """Rows -> a float32 matrix, in chunks so temporaries stay small.

        `out`: a (rows, outputs) array to write into instead (e.g. rows of a larger matrix)
        in the dtype the model computes in, so that it makes no copy of its own. The values
        are float32 whatever `out` holds: a model learns from what it will predict from.
        """
        self._require_columns(frame, where)
        shape = (len(frame), len(self.transformer.get_feature_names_out()))
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape:
            raise ValueError(f"out must have the shape {shape} (rows, outputs); got {out.shape}")
        for start in range(0, len(frame), CHUNK_ROWS):
            chunk = expand(frame.iloc[start : start + CHUNK_ROWS], self.columns, self.kinds, where)
            values = self.transformer.transform(chunk)
            if out.dtype != np.float32:
                values = values.astype(np.float32)
            out[start : start + len(chunk)] = values
        return out

    def check(self, frame: pd.DataFrame, where: str) -> tuple[pd.DataFrame, dict[str, list]]:
        """New rows against what the model was trained on.

        Returns the frame with each column converted to its training kind and, per text
        column, the values never seen in training. Missing columns and values of the
        wrong type are UserErrors naming the column, the row and the value.
        """
        self._require_columns(frame, where)
        converted = frame.copy(deep=False)
        for column in self.columns:
            converted[column] = tables.coerce(
                frame[column], self.kinds[column], f"{where}: column {column!r}"
            )
        return converted, self.unseen_categories(converted)

    def unseen_categories(self, frame: pd.DataFrame) -> dict[str, list]:
        """Text values of `frame` that the encoder never saw in training, per column."""
        categorical = self._categorical_columns()
        if not categorical:
            return {}
        encoder = _unfrozen(self.transformer.named_transformers_["category"])[-1]
        unseen = {}
        for column, known in zip(categorical, encoder.categories_, strict=True):
            values = pd.Series(frame[column].dropna().unique()).astype(str)
            new = sorted(set(values) - set(map(str, known)))
            if new:
                unseen[column] = new
        return unseen

    def _categorical_columns(self) -> list[str]:
        for name, _, columns in self.transformer.transformers_:
            if name == "category":
                return list(columns)
        return []

    def _require_columns(self, frame: pd.DataFrame, where: str) -> None:
        missing = [column for column in self.columns if column not in frame.columns]
        if missing:
            raise UserError(
                f"{where}: missing feature column(s) {', '.join(map(repr, missing[:5]))}; "
                f"the model expects: {', '.join(self.columns[:10])}"
                + (", ..." if len(self.columns) > 10 else "")
            )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "transformer": self.transformer,
            "columns": self.columns,
            "kinds": self.kinds,
            "dropped": self.dropped,
        }
        dump_skops(state, directory / FILE)
        if self.schema is not None:
            preprocessing = {
                "columns": self.columns,
                "dropped": self.dropped,
                "outputs": self.feature_names,
            }
            io.write_json(
                directory / SCHEMA_FILE, {**self.schema.to_json(), "preprocessing": preprocessing}
            )


def expand(
    frame: pd.DataFrame, columns: list[str], kinds: dict[str, str], where: str = "input"
) -> pd.DataFrame:
    """The columns as the ColumnTransformer sees them: numbers, or text for categories.

    Float and text columns are passed on without a copy; only dates, bools and integers
    are converted.
    """
    parts: dict[str, Any] = {}
    for column in columns:
        kind = kinds[column]
        series = tables.coerce(frame[column], kind, f"{where}: column {column!r}")
        if kind == "numeric":
            parts[column] = series if series.dtype == np.float64 else series.astype(np.float64)
        elif kind == "bool":
            parts[column] = series.astype("Float64").astype(np.float64)
        elif kind == "date":
            parts.update(date_parts(series, column))
        else:
            parts[column] = series
    return pd.DataFrame(parts, copy=False)


def date_parts(series: pd.Series, column: str) -> dict[str, pd.Series]:
    """A date column as year, month, day, weekday and days since 1970-01-01."""
    dates = series.dt
    epoch_days = (series - pd.Timestamp(0)) / pd.Timedelta(days=1)
    values = {
        "year": dates.year,
        "month": dates.month,
        "day": dates.day,
        "weekday": dates.dayofweek,
        "epoch_days": epoch_days,
    }
    return {
        f"{column}__{part}": pd.Series(
            values[part].to_numpy(dtype=np.float64, na_value=np.nan), index=series.index
        )
        for part in DATE_PARTS
    }


def fit_preprocessor(train: pd.DataFrame, schema: Schema, params: Any) -> Preprocessor:
    """Fit the feature transform on the training split (`params`: FeaturesParams)."""
    names = schema.feature_names
    unknown = [name for name in params.exclude if name not in names]
    if unknown:
        raise UserError(
            f"params.yaml: features.exclude: unknown column {unknown[0]!r}; allowed: feature "
            f"columns {', '.join(names[:10])}" + (", ..." if len(names) > 10 else "")
        )
    kinds = {
        feature.name: feature.kind or tables.kind_of(train[feature.name])
        for feature in schema.features
    }
    dropped = {
        column: reason
        for column in names
        if kinds[column] == "category"
        and column not in params.exclude
        and (reason := _identifier_like(train[column], params))
    }
    for column, reason in dropped.items():
        log.warning("features: dropping column %r: %s", column, reason)
    columns = [name for name in names if name not in params.exclude and name not in dropped]
    if not columns:
        raise UserError(
            "params.yaml: features.exclude: no feature columns left to train on; allowed: "
            f"exclusions that keep at least one of {', '.join(names[:10])}"
        )
    used = {column: kinds[column] for column in columns}
    transformer = fit_transformer(expand(train, columns, used, "train split"), used, params)
    preprocessor = Preprocessor(transformer, columns, used, dropped, schema)
    log.info(
        "features: %d columns -> %d model inputs (%d dropped, %d excluded)",
        len(names),
        len(preprocessor.feature_names),
        len(dropped),
        len(params.exclude),
    )
    return preprocessor


def _identifier_like(series: pd.Series, params: Any) -> str | None:
    """Why a text column is dropped (nearly one value per row), or None to keep it."""
    present = int(series.notna().sum())
    distinct = int(series.nunique())
    if distinct <= params.max_categories or distinct <= params.high_cardinality_ratio * present:
        if distinct > params.max_categories:
            log.info(
                "features: column %r has %d categories; the %d most frequent are kept, the "
                "rest share one 'infrequent' code",
                series.name,
                distinct,
                params.max_categories - 1,
            )
        return None
    return (
        f"identifier-like: {distinct} distinct values in {present} train rows "
        f"(over features.high_cardinality_ratio={params.high_cardinality_ratio} of rows and "
        f"features.max_categories={params.max_categories})"
    )


def fit_transformer(expanded: pd.DataFrame, kinds: dict[str, str], params: Any) -> Any:
    """A ColumnTransformer fitted on `expanded` (the whole training split), part by part.

    `ColumnTransformer.fit` would also build the transformed training matrix (in float64)
    and throw it away. Instead each part is fitted on its own columns and frozen
    (`FrozenEstimator`), so the ColumnTransformer only records the layout, from two rows.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.frozen import FrozenEstimator

    parts = []
    for name, pipeline, columns in build_parts(kinds, params):
        pipeline.fit(expanded[columns])
        parts.append((name, FrozenEstimator(pipeline), columns))
    transformer = ColumnTransformer(
        parts, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False
    )
    transformer.fit(expanded.head(2))
    try:
        transformer.get_feature_names_out()
    except ValueError:  # two parts made the same output name: prefix them with the part
        transformer.verbose_feature_names_out = True
    return transformer


def build_parts(kinds: dict[str, str], params: Any) -> list[tuple[str, Any, list[str]]]:
    """(name, unfitted pipeline, columns) per part, in output order, per FeaturesParams.

    Numeric columns come in parts of at most NUMERIC_PART columns, so fitting holds a
    copy of a few columns at a time, never of the whole table.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    numeric = []
    for column, kind in kinds.items():
        if kind == "numeric":
            numeric.append(column)
        elif kind == "date":
            numeric += [f"{column}__{part}" for part in DATE_PARTS]
    booleans = [column for column, kind in kinds.items() if kind == "bool"]
    categorical = [column for column, kind in kinds.items() if kind == "category"]

    def numeric_pipeline() -> Any:
        strategy = "constant" if params.numeric_impute == "zero" else params.numeric_impute
        impute = SimpleImputer(
            strategy=strategy,
            fill_value=0.0,
            keep_empty_features=True,
            add_indicator=params.missing_indicator,
        )
        steps: list[tuple[str, Any]] = [("impute", impute)]
        if params.scale != "none":
            steps.append(("scale", _scaler(params.scale)))
        return Pipeline(steps)

    parts = []
    for start in range(0, len(numeric), NUMERIC_PART):
        name = "numeric" if start == 0 else f"numeric_{start // NUMERIC_PART + 1}"
        parts.append((name, numeric_pipeline(), numeric[start : start + NUMERIC_PART]))
    if booleans:
        impute = SimpleImputer(strategy="most_frequent", keep_empty_features=True)
        parts.append(("bool", Pipeline([("impute", impute)]), booleans))
    if categorical:
        steps = [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING)),
            ("encode", _encoder(params)),
        ]
        parts.append(("category", Pipeline(steps), categorical))
    return parts


def _scaler(kind: str) -> Any:
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    return {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}[kind]()


def _encoder(params: Any) -> Any:
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    min_frequency = params.min_frequency or None
    if params.categorical == "ordinal":
        return OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=-1,
            max_categories=params.max_categories,
            min_frequency=min_frequency,
            dtype=np.float32,
        )
    return OneHotEncoder(
        handle_unknown="infrequent_if_exist",
        max_categories=params.max_categories,
        min_frequency=min_frequency,
        sparse_output=False,
        dtype=np.float32,
    )


def _unfrozen(part: Any) -> Any:
    """The fitted pipeline inside a FrozenEstimator (or the part itself)."""
    return getattr(part, "estimator", part)


def trusted(name: str) -> bool:
    """A type skops may build: explicitly listed, or a class under a trusted package."""
    if name in TRUSTED_TYPES:
        return True
    module_name, _, attribute = name.rpartition(".")
    if module_name.split(".")[0] not in TRUSTED_PACKAGES:
        return False
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError):
        return False
    return isinstance(value, type)


def load_skops(path: Path, what: str) -> Any:
    """Load a skops file that may hold only allow-listed classes; anything else, or a file
    that does not decode, is a one-line UserError naming `what` it should have been."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
        refused = [name for name in untrusted if not trusted(name)]
        if refused:
            raise UserError(
                f"{path}: refusing to load; it holds types outside the allow-list "
                f"(classes under {', '.join(TRUSTED_PACKAGES)}): {', '.join(refused[:3])}"
            )
        return sio.load(path, trusted=untrusted)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decode failure means a bad file
        raise UserError(f"{path}: corrupt or unreadable {what} ({type(exc).__name__})") from None


def dump_skops(obj: Any, path: Path) -> None:
    """Write `obj` as a skops file, atomically, in canonical form (see `canonical_skops`):
    the same object state gives the same bytes, so DVC sees no change on a rerun."""
    import skops.io as sio

    with io.atomic_path(path) as tmp:
        tmp.write_bytes(canonical_skops(sio.dumps(obj)))


def canonical_skops(data: bytes) -> bytes:
    """A skops archive rewritten so that its bytes depend only on the object's state.

    skops (0.16) names each array member `<id(array)>.npy` (bytes: a random `<uuid>.bin`),
    records every node's `id()` as its `__id__` in `schema.json`, and stamps each zip
    entry with the time of writing: two dumps of equal objects differ. Here the ids are
    renumbered 1, 2, ... and the members named `1.npy`, `2.npy`, ... in order of first
    appearance in `schema.json` (equal ids stay equal: skops uses them to restore shared
    references), and every entry is written uncompressed, as skops does, in that order with
    a fixed date and mode. skops reads the result as it reads its own files.
    """
    with zipfile.ZipFile(BytesIO(data)) as source:
        schema = json.loads(source.read(SKOPS_SCHEMA))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}
        _renumber(schema, ids, files)
        unnamed = sorted(set(source.namelist()) - {SKOPS_SCHEMA} - set(files))
        if unnamed:  # a skops layout this code does not know: better to fail than to churn
            raise ValueError(f"skops archive: members not named in {SKOPS_SCHEMA}: {unnamed[:3]}")
        out = BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
            for old, new in files.items():
                _write_member(target, new, source.read(old))
            _write_member(target, SKOPS_SCHEMA, json.dumps(schema, indent=2).encode())
    return out.getvalue()


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str]) -> None:
    """Replace, in place, each `__id__` and member `file` of a skops schema by its rank."""
    if isinstance(node, list):
        for item in node:
            _renumber(item, ids, files)
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("__id__"), int):  # from 1: skops memoizes no `__id__` of 0
        node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
    if "__loader__" in node and isinstance(node.get("file"), str):
        old = node["file"]
        node["file"] = files.setdefault(old, f"{len(files) + 1}{PurePosixPath(old).suffix}")
    for value in node.values():
        _renumber(value, ids, files)


def _write_member(target: zipfile.ZipFile, name: str, payload: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.create_system = 3  # Unix, whatever the platform, like the mode below
    info.external_attr = 0o644 << 16
    target.writestr(info, payload)


def load_preprocessor(directory: Path) -> Preprocessor:
    directory = Path(directory)
    path = directory / FILE
    if not path.is_file():
        raise UserError(f"{path}: preprocessor file not found; is {directory} a model directory?")
    state = load_skops(path, "preprocessor")
    return Preprocessor(
        state["transformer"],
        state["columns"],
        state.get("kinds"),
        state.get("dropped"),
        _read_schema(directory / SCHEMA_FILE),
    )


def _read_schema(path: Path) -> Schema | None:
    raw = io.read_json_if_present(path, "model schema")
    return None if raw is None else Schema.from_json(raw, str(path))
