"""Train/dev/test splitting without leakage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from stages.errors import UserError

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
    """A 64-bit hash of each row's feature values (equal rows, equal hash)."""
    return pd.util.hash_pandas_object(features, index=False).to_numpy()


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
    parts: dict[str, pd.DataFrame], target: str, task: str, found: int, remaining: int
) -> dict[str, Any]:
    """Sizes, class counts per split and the cross-split duplicate counts."""
    summary: dict[str, Any] = {
        "sizes": {name: len(frame) for name, frame in parts.items()},
        "duplicates_across_splits": {"found": found, "remaining": remaining},
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
