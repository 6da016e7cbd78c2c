"""Seeded, stratified train/dev/test splits with no identical rows across splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reprotrain.config.errors import UserError
from reprotrain.data import splitting

FRACTIONS = {"train": 0.6, "dev": 0.2, "test": 0.2}


def test_fractions_are_respected() -> None:
    codes = splitting.split_codes(100, None, FRACTIONS, seed=0)
    assert np.bincount(codes, minlength=3).tolist() == [60, 20, 20]


def test_uneven_fractions() -> None:
    codes = splitting.split_codes(200, None, {"train": 0.7, "dev": 0.1, "test": 0.2}, seed=3)
    assert np.bincount(codes, minlength=3).tolist() == [140, 20, 40]


def test_stratified_keeps_class_shares(classification_frame: pd.DataFrame) -> None:
    labels = classification_frame["label"].to_numpy()
    codes = splitting.split_codes(len(labels), labels, FRACTIONS, seed=0)
    for code, expected in enumerate((18, 6, 6)):  # 30 rows per class: 60/20/20 %
        counts = np.bincount(labels[codes == code], minlength=3)
        assert counts.tolist() == [expected] * 3


@pytest.mark.parametrize("labels", [None, "stratified"], ids=["plain", "stratified"])
def test_same_seed_same_split_other_seed_other_split(classification_frame, labels) -> None:
    stratify = classification_frame["label"].to_numpy() if labels else None
    first = splitting.split_codes(90, stratify, FRACTIONS, seed=7)
    again = splitting.split_codes(90, stratify, FRACTIONS, seed=7)
    other = splitting.split_codes(90, stratify, FRACTIONS, seed=8)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(
    ("n_rows", "fractions", "message"),
    [
        pytest.param(
            4,
            {"train": 0.9, "dev": 0.05, "test": 0.05},
            r"params\.yaml: split\.dev: fraction 0\.05 of 4 rows leaves the dev split empty; "
            r"allowed: a fraction giving at least 1 row",
            id="empty-dev",
        ),
        pytest.param(
            10,
            {"train": 0.5, "dev": 0.45, "test": 0.05},
            r"split\.test: fraction 0\.05 of 10 rows leaves the test split empty",
            id="empty-test",
        ),
    ],
)
def test_empty_split_is_an_error(n_rows: int, fractions: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        splitting.split_codes(n_rows, None, fractions, seed=0)


def test_impossible_stratification_is_an_error() -> None:
    labels = np.array([0] * 9 + [1])  # one sample of class 1 cannot be stratified
    with pytest.raises(
        UserError,
        match=r"split: stratified split impossible on 10 rows .*"
        r"set split\.stratify: false",
    ):
        splitting.split_codes(10, labels, FRACTIONS, seed=0)


def test_row_hashes_equal_for_equal_rows() -> None:
    features = pd.DataFrame({"a": [1.0, 2.0, 1.0], "b": [3.0, 4.0, 3.0]})
    hashes = splitting.row_hashes(features)
    assert hashes[0] == hashes[2] != hashes[1]


def test_duplicates_across_splits_are_resolved_to_zero() -> None:
    features = pd.DataFrame({"a": [1, 1, 1, 2, 2, 3, 4, 4], "b": [0, 0, 0, 5, 5, 6, 7, 7]})
    codes = np.array([2, 0, 1, 1, 2, 0, 1, 1], dtype=np.int8)
    hashes = splitting.row_hashes(features)
    assert splitting.count_cross_split_duplicates(codes, hashes) == 5

    resolved, found = splitting.resolve_duplicates(codes, hashes)
    assert found == 5  # the three copies of (1, 0) and the two of (2, 5)
    assert resolved.tolist() == [0, 0, 0, 1, 1, 0, 1, 1]  # each group moves to its earliest split
    assert splitting.count_cross_split_duplicates(resolved, hashes) == 0


def test_split_summary(classification_frame: pd.DataFrame) -> None:
    parts = {
        "train": classification_frame.iloc[:60],
        "dev": classification_frame.iloc[60:75],
        "test": classification_frame.iloc[75:],
    }
    summary = splitting.split_summary(parts, "label", "classification", found=4, remaining=0)
    assert summary["sizes"] == {"train": 60, "dev": 15, "test": 15}
    assert summary["duplicates_across_splits"] == {"found": 4, "remaining": 0, "dropped": 0}
    assert summary["method"] == "random"
    assert summary["class_counts"]["train"] == {"0": 30, "1": 30}
    assert summary["class_counts"]["test"] == {"2": 15}


def test_split_summary_regression_has_no_class_counts(regression_frame) -> None:
    parts = {"train": regression_frame, "dev": regression_frame, "test": regression_frame}
    assert "class_counts" not in splitting.split_summary(parts, "y", "regression", 0, 0)
