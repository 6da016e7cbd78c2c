"""Train/dev/test splitting without leakage.

Three ways to assign rows: random (stratified on the class label by default), by group
(rows sharing a group value never cross splits) and by time (train before dev before
test). Identical feature rows in more than one split are counted, then resolved: moved
to the earliest split (random) or dropped from the later one (group, time).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from reprotrain.config.errors import UserError
from reprotrain.config.paths import PREPARED_DATA

SPLITS = ("train", "dev", "test")


def split_codes(
    n_rows: int, labels: np.ndarray | None, fractions: dict[str, float], seed: int
) -> np.ndarray:
    """Assign each row a split code (0 train, 1 dev, 2 test), stratified on `labels`."""
    for name in SPLITS:
        expected = fractions[name] * n_rows
        if expected < 1:
            raise UserError(
                f"params.yaml: split.{name}: fraction {fractions[name]} of {n_rows} rows "
                f"leaves the {name} split empty; allowed: a fraction giving at least 1 row"
            )
    rows = np.arange(n_rows)
    try:
        train_rows, rest = train_test_split(
            rows, train_size=fractions["train"], stratify=labels, random_state=seed
        )
        dev_share = fractions["dev"] / (fractions["dev"] + fractions["test"])
        rest_labels = labels[rest] if labels is not None else None
        dev_rows, test_rows = train_test_split(
            rest, train_size=dev_share, stratify=rest_labels, random_state=seed
        )
    except ValueError as exc:
        raise UserError(
            f"params.yaml: split: stratified split impossible on {n_rows} rows ({exc}); "
            "set split.stratify: false or use larger fractions"
        ) from None
    codes = np.empty(n_rows, dtype=np.int8)
    codes[train_rows], codes[dev_rows], codes[test_rows] = 0, 1, 2
    return codes


def row_hashes(features: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's feature values (equal rows, equal hash).

    Plain text columns are hashed through their factorized codes (equal text, equal code
    within this frame), which spares a Python string per row for identifier-like text.
    """
    columns = {}
    for name in features.columns:
        series = features[name]
        if pd.api.types.is_string_dtype(series.dtype) and not isinstance(
            series.dtype, pd.CategoricalDtype
        ):
            series = pd.Series(pd.factorize(series)[0], index=series.index)
        columns[name] = series
    return pd.util.hash_pandas_object(pd.DataFrame(columns, copy=False), index=False).to_numpy()


def resolve_duplicates(codes: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, int]:
    """Move every group of identical feature rows that spans splits into its earliest split.

    Returns the new codes and how many rows were in such groups before the move. Moving
    towards train keeps dev and test free of rows the model has already seen.
    """
    frame = pd.DataFrame({"hash": hashes, "code": codes})
    earliest = frame.groupby("hash")["code"].transform("min").to_numpy()
    spans = frame.groupby("hash")["code"].transform("nunique").to_numpy() > 1
    return earliest.astype(np.int8), int(spans.sum())


def count_cross_split_duplicates(codes: np.ndarray, hashes: np.ndarray) -> int:
    """Rows whose identical feature row appears in another split."""
    frame = pd.DataFrame({"hash": hashes, "code": codes})
    return int((frame.groupby("hash")["code"].transform("nunique") > 1).sum())


def split_summary(
    parts: dict[str, pd.DataFrame],
    target: str,
    task: str,
    found: int,
    remaining: int,
    method: str = "random",
    dropped: int = 0,
) -> dict[str, Any]:
    """Sizes, class counts per split and the cross-split duplicate counts.

    `found`: rows with an identical feature row in another split before resolving;
    `dropped`: rows removed to resolve them (group/time splits; others move rows).
    """
    summary: dict[str, Any] = {
        "method": method,
        "sizes": {name: len(frame) for name, frame in parts.items()},
        "duplicates_across_splits": {"found": found, "remaining": remaining, "dropped": dropped},
    }
    if task == "classification":
        summary["class_counts"] = {
            name: {
                str(label): int(count)
                for label, count in frame[target].value_counts().sort_index().items()
            }
            for name, frame in parts.items()
        }
    return summary


def check_filled_after_duplicates(codes: np.ndarray, found: int) -> None:
    """Resolving cross-split duplicates left every split at least one row, else one line:
    with few distinct feature rows, every row may have a twin in train."""
    counts = np.bincount(codes[codes >= 0], minlength=len(SPLITS))
    empty = [name for code, name in enumerate(SPLITS) if counts[code] == 0]
    if empty:
        raise UserError(
            f"{PREPARED_DATA}: {found} of {len(codes)} rows have an identical feature row in "
            f"another split; resolving them leaves {' and '.join(empty)} empty; allowed: "
            "feature rows distinct enough that every split keeps rows; drop the repeated "
            "rows, add the features that tell them apart, or set split.group_column"
        )


def _check_not_empty(codes: np.ndarray, fractions: dict[str, float], unit: str) -> None:
    counts = np.bincount(codes[codes >= 0], minlength=len(SPLITS))
    for code, name in enumerate(SPLITS):
        if counts[code] == 0:
            raise UserError(
                f"params.yaml: split.{name}: fraction {fractions[name]} of {unit} leaves the "
                f"{name} split empty; allowed: fractions giving every split at least one"
            )


def _cut(sizes: np.ndarray, fractions: dict[str, float]) -> np.ndarray:
    """Consecutive blocks (groups, time steps) of these sizes -> split codes.

    A block goes to the split its middle row falls in, so whole blocks stay together and
    the row shares come as close to the fractions as block sizes allow.
    """
    middle = (np.cumsum(sizes) - sizes / 2) / sizes.sum()
    edges = np.array([fractions["train"], fractions["train"] + fractions["dev"]])
    return np.searchsorted(edges, middle, side="right").astype(np.int8)


def group_codes(groups: pd.Series, fractions: dict[str, float], seed: int) -> np.ndarray:
    """Whole groups to splits (seeded shuffle): rows sharing a group value stay together."""
    missing = int(groups.isna().sum())
    if missing:
        raise UserError(
            f"params.yaml: split.group_column: column {groups.name!r} has {missing} missing "
            "values; allowed: a group value on every row"
        )
    row_groups, uniques = pd.factorize(groups, sort=True)
    order = np.random.default_rng(seed).permutation(len(uniques))
    sizes = np.bincount(row_groups, minlength=len(uniques))[order]
    group_split = np.empty(len(uniques), dtype=np.int8)
    group_split[order] = _cut(sizes, fractions)
    codes = group_split[row_groups]
    _check_not_empty(codes, fractions, f"{len(uniques)} groups in {groups.name!r}")
    return codes


def time_codes(times: pd.Series, fractions: dict[str, float]) -> np.ndarray:
    """Train before dev before test along `times`; rows with equal times stay together."""
    name = times.name
    if not (
        pd.api.types.is_datetime64_any_dtype(times.dtype)
        or (pd.api.types.is_numeric_dtype(times.dtype) and not pd.api.types.is_bool_dtype(times))
    ):
        raise UserError(
            f"params.yaml: split.time_column: column {name!r} must hold dates or numbers, "
            f"got {times.dtype}"
        )
    missing = int(times.isna().sum())
    if missing:
        raise UserError(
            f"params.yaml: split.time_column: column {name!r} has {missing} missing values; "
            "allowed: a time on every row"
        )
    row_steps, uniques = pd.factorize(times, sort=True)
    step_split = _cut(np.bincount(row_steps, minlength=len(uniques)), fractions)
    codes = step_split[row_steps]
    _check_not_empty(codes, fractions, f"{len(uniques)} distinct times in {name!r}")
    return codes


def drop_later_duplicates(codes: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop (code -1) every row whose identical feature row sits in an earlier split.

    Used for group and time splits, where moving a row would break the group or the time
    order; dropping from the later split cannot. Returns the codes and how many dropped.
    """
    frame = pd.DataFrame({"hash": hashes, "code": codes})
    earliest = frame.groupby("hash")["code"].transform("min").to_numpy()
    later = codes > earliest
    dropped = codes.copy()
    dropped[later] = -1
    return dropped, int(later.sum())


def time_ranges(times: pd.Series, codes: np.ndarray) -> dict[str, list[str]]:
    """[first, last] time of each split, as text."""
    return {
        name: [str(times[codes == code].min()), str(times[codes == code].max())]
        for code, name in enumerate(SPLITS)
    }


def group_counts(groups: pd.Series, codes: np.ndarray) -> dict[str, int]:
    return {name: int(groups[codes == code].nunique()) for code, name in enumerate(SPLITS)}
