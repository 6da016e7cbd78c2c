"""Group-aware and time-ordered splits, and the cross-split duplicate check of the stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reprotrain.config.errors import UserError
from reprotrain.config.paths import PREPARED_DATA, SCHEMA, SPLIT_FILES, SPLIT_METRICS
from reprotrain.data import datasets, io, splitting
from reprotrain.data.tables import read_frame
from stages import split

FRACTIONS = {"train": 0.6, "dev": 0.2, "test": 0.2}


def test_groups_never_cross_splits() -> None:
    rng = np.random.default_rng(0)
    groups = pd.Series(rng.integers(0, 40, 1000), name="patient")
    codes = splitting.group_codes(groups, FRACTIONS, seed=0)
    assert (pd.DataFrame({"g": groups, "c": codes}).groupby("g")["c"].nunique() == 1).all()
    shares = np.bincount(codes, minlength=3) / len(codes)
    assert np.allclose(shares, [0.6, 0.2, 0.2], atol=0.08)
    assert not np.array_equal(codes, splitting.group_codes(groups, FRACTIONS, seed=1))
    assert np.array_equal(codes, splitting.group_codes(groups, FRACTIONS, seed=0))


def test_time_split_orders_train_dev_test() -> None:
    times = pd.Series(pd.date_range("2024-01-01", periods=100, freq="D"), name="day")
    shuffled = times.sample(frac=1, random_state=0).reset_index(drop=True)
    codes = splitting.time_codes(shuffled, FRACTIONS)
    train, dev, test = (shuffled[codes == code] for code in range(3))
    assert train.max() < dev.min() and dev.max() < test.min()
    assert [len(train), len(dev), len(test)] == [60, 20, 20]


def test_equal_times_stay_in_one_split() -> None:
    times = pd.Series(np.repeat(np.arange(10), 10), name="step")  # 10 rows per step
    codes = splitting.time_codes(times, {"train": 0.55, "dev": 0.25, "test": 0.2})
    assert (pd.DataFrame({"t": times, "c": codes}).groupby("t")["c"].nunique() == 1).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda: splitting.group_codes(pd.Series(["a", "b"], name="g"), FRACTIONS, 0),
            r"params\.yaml: split\.(dev|test): fraction 0\.2 of 2 groups in 'g' leaves the "
            r"(dev|test) split empty",
            id="too-few-groups",
        ),
        pytest.param(
            lambda: splitting.group_codes(pd.Series(["a", None, "b"], name="g"), FRACTIONS, 0),
            r"params\.yaml: split\.group_column: column 'g' has 1 missing values; allowed: a "
            r"group value on every row",
            id="missing-group",
        ),
        pytest.param(
            lambda: splitting.time_codes(pd.Series([1.0, np.nan, 3.0], name="t"), FRACTIONS),
            r"split\.time_column: column 't' has 1 missing values",
            id="missing-time",
        ),
        pytest.param(
            lambda: splitting.time_codes(pd.Series(["x", "y"], name="t"), FRACTIONS),
            r"split\.time_column: column 't' must hold dates or numbers, got",
            id="text-time",
        ),
        pytest.param(
            lambda: splitting.time_codes(pd.Series([1, 1, 1, 2], name="t"), FRACTIONS),
            r"split\.(dev|test): fraction 0\.2 of 2 distinct times in 't' leaves the",
            id="too-few-times",
        ),
    ],
)
def test_group_and_time_errors(call, message: str) -> None:
    with pytest.raises(UserError, match=message):
        call()


def test_drop_later_duplicates_keeps_the_earliest_copy() -> None:
    hashes = np.array([7, 7, 7, 8, 8, 9])
    codes = np.array([1, 0, 2, 2, 1, 0], dtype=np.int8)
    dropped, count = splitting.drop_later_duplicates(codes, hashes)
    assert dropped.tolist() == [-1, 0, -1, -1, 1, 0]
    assert count == 3


# --- the stage --------------------------------------------------------------------------


def prepared(frame: pd.DataFrame, target: str = "label") -> None:
    """Write data/prepared as the prepare stage would."""
    schema = datasets.build_schema(frame, target, "classification", "test", None)
    io.write_parquet(PREPARED_DATA, frame)
    schema.write(SCHEMA)


def visits(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "patient": pd.Categorical([f"p{i % 25}" for i in range(n)]),
            "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(n), "D"),
            "x": rng.normal(size=n),
            "label": rng.integers(0, 2, n),
        }
    )


def test_stage_group_split(workdir) -> None:
    workdir({"split": {"group_column": "patient"}})
    prepared(visits())
    split.main()
    parts = {name: read_frame(path) for name, path in SPLIT_FILES.items()}
    patients = [set(part["patient"].astype(str)) for part in parts.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    summary = io.read_json(SPLIT_METRICS)
    assert summary["method"] == "group"
    assert sum(summary["groups"].values()) == 25
    assert sum(summary["sizes"].values()) == 200


def test_stage_time_split(workdir) -> None:
    workdir({"split": {"time_column": "day"}})
    prepared(visits())
    split.main()
    train, dev, test = (read_frame(SPLIT_FILES[name])["day"] for name in ("train", "dev", "test"))
    assert train.max() < dev.min() and dev.max() < test.min()
    summary = io.read_json(SPLIT_METRICS)
    assert summary["method"] == "time"
    assert summary["time_ranges"]["train"][0] == "2024-01-01 00:00:00"


def duplicated_rows() -> pd.DataFrame:
    """40 rows, of which 10 are copies of earlier feature rows (with the same label)."""
    frame = visits(30).drop(columns=["patient", "day"])
    return pd.concat([frame, frame.iloc[:10]], ignore_index=True)


@pytest.mark.parametrize(
    ("params", "dropped"),
    [
        pytest.param({"stratify": False}, False, id="random-moves"),
        pytest.param({"time_column": "t"}, True, id="time-drops"),
    ],
)
def test_stage_resolves_duplicates(workdir, params: dict, dropped: bool) -> None:
    workdir({"split": params})
    frame = duplicated_rows()
    if "time_column" in params:  # copies land at other times than their originals, spread
        # over the splits (in time order, the last 10 rows would make test all copies)
        frame["t"] = np.random.default_rng(0).permutation(len(frame))
    prepared(frame)
    split.main()
    summary = io.read_json(SPLIT_METRICS)
    duplicates = summary["duplicates_across_splits"]
    assert duplicates["found"] > 0 and duplicates["remaining"] == 0
    assert (duplicates["dropped"] > 0) is dropped
    total = sum(summary["sizes"].values())
    assert total == len(frame) - duplicates["dropped"]
    parts = [
        read_frame(path).drop(columns=["label", "t"], errors="ignore")
        for path in SPLIT_FILES.values()
    ]
    hashes = [set(splitting.row_hashes(part)) for part in parts]
    assert not (hashes[0] & hashes[1] or hashes[0] & hashes[2] or hashes[1] & hashes[2])


def test_fail_on_duplicates_writes_nothing(workdir) -> None:
    workdir({"split": {"stratify": False, "fail_on_duplicates": True}})
    prepared(duplicated_rows())
    with pytest.raises(
        UserError,
        match=r"params\.yaml: split\.fail_on_duplicates: \d+ rows of data/prepared/data\.parquet "
        r"have an identical feature row in another split; allowed: none while it is true",
    ):
        split.main()
    assert not any(path.exists() for path in SPLIT_FILES.values())
    assert not SPLIT_METRICS.exists()


def test_duplicates_that_would_empty_a_split_are_one_line(workdir) -> None:
    """Few distinct feature rows: every row has a twin in train, so dev and test would be
    empty after moving the twins (train then crashed in scikit-learn on an empty dev)."""
    workdir({"split": {"stratify": False}})
    prepared(pd.DataFrame({"x": np.arange(120) % 3, "label": np.arange(120) % 2}))
    with pytest.raises(
        UserError,
        match=r"^data/prepared/data\.parquet: 120 of 120 rows have an identical feature row in "
        r"another split; resolving them leaves dev and test empty; allowed: ",
    ):
        split.main()
    assert not any(path.exists() for path in SPLIT_FILES.values())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(
            {"group_column": "patiant"},
            r"params\.yaml: split\.group_column: unknown column 'patiant'; allowed: columns of "
            r"data/prepared/data\.parquet: patient, day, x, label",
            id="unknown-group-column",
        ),
        pytest.param(
            {"group_column": "patient", "time_column": "day"},
            r"params\.yaml: split: group_column and time_column cannot both be set",
            id="group-and-time",
        ),
    ],
)
def test_stage_param_errors(workdir, params: dict, message: str) -> None:
    workdir({"split": params})
    prepared(visits())
    with pytest.raises(UserError, match=message):
        split.main()
