"""Cross-validation folds over train+dev: when they are cut, and how."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import repo_params

from reprotrain.config import SplitParams
from reprotrain.config.errors import UserError
from reprotrain.data import folds


def split_params(**overrides) -> SplitParams:
    return repo_params.section("split", **overrides)


@pytest.mark.parametrize(
    ("overrides", "method", "n_dev", "expected"),
    [
        ({}, "stratified", 36, 5),  # wine's dev split: small, so folds
        ({}, "random", 299, 5),
        ({}, "stratified", 300, 0),  # digits' 360: the dev split alone
        ({"cv_folds": 0}, "stratified", 36, 0),
        ({"cv_folds": 10}, "random", 5000, 10),  # asked for: whatever the size
        ({}, "group", 36, 0),  # auto keeps a group or time split's dev split
        ({}, "time", 36, 0),
    ],
    ids=["auto-small", "auto-299", "auto-300", "off", "explicit", "group", "time"],
)
def test_folds_are_cut_when_dev_is_small_or_when_asked(overrides, method, n_dev, expected):
    n_folds, reason = folds.resolve(split_params(**overrides), method, n_dev)
    assert n_folds == expected
    assert reason  # split.json says why


def test_explicit_folds_on_a_group_split_are_refused() -> None:
    message = (
        r"^params.yaml: split.cv_folds: cross-validation needs a random or stratified split; "
        r"allowed with split.group_column set: 0 or auto, got 5$"
    )
    with pytest.raises(UserError, match=message):
        folds.resolve(split_params(cv_folds=5), "group", 36)


@pytest.mark.parametrize("value", [1, 21, -1, "five"], ids=["one", "too-many", "negative", "text"])
def test_cv_folds_out_of_range_is_a_params_error(value) -> None:
    with pytest.raises(UserError, match=r"^params.yaml: split.cv_folds: "):
        split_params(cv_folds=value)


def test_every_row_is_held_out_once_per_repeat_and_classes_are_spread() -> None:
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    codes = folds.fold_codes(len(labels), labels, 5, 3, seed=0)
    assert codes.shape == (100, 3)
    for repeat in range(3):
        assert set(codes[:, repeat]) == set(range(5))
        for number in range(5):
            held_out = labels[codes[:, repeat] == number]
            # stratified: each fold holds a fifth of each class
            assert np.bincount(held_out, minlength=3).tolist() == [10, 6, 4]
    assert not np.array_equal(codes[:, 0], codes[:, 1])  # each repeat cut anew
    assert np.array_equal(codes, folds.fold_codes(len(labels), labels, 5, 3, seed=0))
    assert not np.array_equal(codes, folds.fold_codes(len(labels), labels, 5, 3, seed=1))


def test_a_class_rarer_than_the_folds_still_gets_folds() -> None:
    labels = np.array([0] * 20 + [1] * 2)
    codes = folds.fold_codes(len(labels), labels, 5, 1, seed=0)
    assert sorted(np.bincount(codes[:, 0])) == [4, 4, 4, 5, 5]


def test_more_folds_than_rows_is_one_line() -> None:
    with pytest.raises(UserError, match=r"^params.yaml: split.cv_folds: 5 folds of 3 train\+dev"):
        folds.fold_codes(3, None, 5, 1, seed=0)


def test_folds_round_trip_and_none_means_the_dev_split(tmp_path: Path) -> None:
    codes = folds.fold_codes(20, None, 4, 2, seed=0)
    folds.write(tmp_path / "folds.parquet", codes)
    assert np.array_equal(folds.read(tmp_path / "folds.parquet"), codes)
    folds.write(tmp_path / "none.parquet", None)
    assert folds.read(tmp_path / "none.parquet") is None
