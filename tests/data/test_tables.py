"""CSV, Parquet and JSON Lines files -> typed frames; column kinds and their coercion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprotrain.config.errors import UserError
from reprotrain.data import tables

MIXED_CSV = (
    "amount,count,color,member,joined,label\n"
    "1.5,3,red,true,2024-01-31,a\n"
    ",4,,false,2024-02-29,b\n"
    "2.5,,blue,,,a\n"
    "3.0,7,red,TRUE,2023-12-01,b\n"
)
EXPECTED_KINDS = {
    "amount": "numeric",
    "count": "numeric",
    "color": "category",
    "member": "bool",
    "joined": "date",
    "label": "category",
}


def _write(tmp_path: Path, suffix: str) -> Path:
    """The mixed table in `suffix` format (JSON Lines and Parquet built from the CSV)."""
    csv = tmp_path / "mixed.csv"
    csv.write_text(MIXED_CSV)
    if suffix == ".csv":
        return csv
    frame = pd.read_csv(csv, parse_dates=["joined"], dtype={"member": "boolean"})
    path = tmp_path / f"mixed{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame["joined"] = frame["joined"].dt.strftime("%Y-%m-%d")
        frame.to_json(path, orient="records", lines=True)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"], ids=["csv", "parquet", "jsonl"])
def test_mixed_types_and_missing_values(tmp_path: Path, suffix: str) -> None:
    frame = tables.read_table(_write(tmp_path, suffix))
    assert {column: tables.kind_of(frame[column]) for column in frame} == EXPECTED_KINDS
    assert frame["amount"].isna().tolist() == [False, True, False, False]
    assert frame["color"].tolist()[:2] == ["red", None] or pd.isna(frame["color"].iloc[1])
    assert frame["member"].tolist()[:2] == [True, False] and pd.isna(frame["member"].iloc[2])
    assert frame["joined"].iloc[1] == pd.Timestamp("2024-02-29")
    assert pd.isna(frame["joined"].iloc[2])
    assert isinstance(frame["color"].dtype, pd.CategoricalDtype)  # compact text


def test_column_types_override_inference(tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("zip,flag,day,label\n02134,1,2024-01-31,a\n10001,0,2024-02-01,b\n")
    frame = tables.read_table(path, {"zip": "category", "flag": "bool", "day": "category"})
    assert frame["zip"].tolist() == ["02134", "10001"]  # leading zero kept
    assert frame["flag"].tolist() == [True, False]
    assert tables.kind_of(frame["day"]) == "category"


@pytest.mark.parametrize(
    ("content", "types", "message"),
    [
        pytest.param(
            "a,label\n1,x\nlots,y\n",
            {"a": "numeric"},
            r"bad\.csv: column 'a' must be numeric, got 'lots'",
            id="declared-numeric",
        ),
        pytest.param(
            "a,label\nmaybe,x\ntrue,y\n",
            {"a": "bool"},
            r"bad\.csv: column 'a' must be true/false, got 'maybe'",
            id="declared-bool",
        ),
        pytest.param(
            "a,label\n2024-01-01,x\nyesterday,y\n",
            {"a": "date"},
            r"bad\.csv: column 'a' must be a date \(ISO 8601, e\.g\. 2024-01-31\), got "
            r"'yesterday' \(row 2\)",
            id="declared-date",
        ),
        pytest.param(
            "a,label\n1,x\n",
            {"b": "numeric"},
            r"params\.yaml: prepare\.column_types: unknown column 'b' in .*bad\.csv; "
            r"columns are: a, label",
            id="unknown-declared-column",
        ),
        pytest.param(
            "a,a\n1,2\n",
            {},
            r"bad\.csv: duplicate column name 'a'; allowed: unique names",
            id="duplicate-names",
        ),
        pytest.param(
            "a,b\n1,2\n3\n",
            {},
            r"bad\.csv: not a valid CSV file \(CSV parse error: Row #3: Expected 2 columns, got 1",
            id="ragged-rows",
        ),
        pytest.param(
            'a,b\n1,"open\n',
            {},
            r"bad\.csv: not a valid CSV file \(a quoted field is never closed\)",
            id="unclosed-quote",
        ),
    ],
)
def test_bad_csv(tmp_path: Path, content: str, types: dict, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        tables.read_table(path, types)


def test_text_among_numbers_in_the_first_block(tmp_path: Path) -> None:
    path = tmp_path / "typo.csv"
    rows = "".join(f"{i},{i % 2}\n" for i in range(1000))
    path.write_text("a,label\n" + rows + "n/a?,1\n")
    frame = tables.read_table(path)
    assert tables.numeric_text_value(frame["a"]) == ("n/a?", 1001)


@pytest.fixture
def tiny_blocks(monkeypatch) -> None:
    """CSV blocks of 64 bytes: types are inferred from the first few rows only."""
    monkeypatch.setattr(tables, "_CSV_BLOCK", 64)


def test_later_blocks_widen_integers_and_kind_late_columns(tmp_path: Path, tiny_blocks) -> None:
    path = tmp_path / "late.csv"
    head = "".join(f"{i},{i},,{i % 2}\n" for i in range(40))
    path.write_text("a,b,late,label\n" + head + "1.5,41,2024-01-31,1\n")
    frame = tables.read_table(path)
    assert frame["a"].dtype == np.float64 and frame["a"].iloc[-1] == 1.5
    assert frame["b"].dtype == np.int64 and frame["label"].dtype == np.int64
    assert tables.kind_of(frame["late"]) == "date"
    assert frame["late"].iloc[-1] == pd.Timestamp("2024-01-31")


@pytest.mark.parametrize(
    ("late_value", "message"),
    [
        pytest.param("abc", r"late\.csv: column 'a' must be numeric, got 'abc'", id="text"),
        pytest.param("maybe", r"late\.csv: column 'c' must be true/false, got 'maybe'", id="bool"),
    ],
)
def test_bad_value_in_a_later_block(tmp_path: Path, tiny_blocks, late_value, message) -> None:
    path = tmp_path / "late.csv"
    head = "".join(f"{i},true,{i % 2}\n" for i in range(40))
    column = 0 if late_value == "abc" else 1
    last = ["7", "false", "1"]
    last[column] = late_value
    path.write_text("a,c,label\n" + head + ",".join(last) + "\n")
    with pytest.raises(UserError, match=message):
        tables.read_table(path)


def test_json_lines_with_changing_types(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1, "label": "x"}\n{"a": "one", "label": "y"}\n')
    with pytest.raises(
        UserError,
        match=r"bad\.jsonl: column 'a' must hold one type, got number values and then a "
        r"string value \(line 2\)",
    ):
        tables.read_table(path)


def test_unsupported_nested_type(tmp_path: Path) -> None:
    path = tmp_path / "nested.jsonl"
    path.write_text('{"a": [1, 2], "label": "x"}\n')
    with pytest.raises(UserError, match=r"column 'a' has type list<item: int64>; allowed: text"):
        tables.read_table(path)


def test_check_suffix_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(
        UserError,
        match=r"--input: unsupported file type '\.xlsx' for .*; allowed: \.csv, \.parquet, "
        r"\.jsonl, \.ndjson",
    ):
        tables.check_suffix(tmp_path / "data.xlsx", "--input")


@pytest.mark.parametrize(
    ("values", "kind", "expected"),
    [
        pytest.param(["1", "2.5", None], "numeric", [1.0, 2.5, np.nan], id="text-to-numeric"),
        pytest.param(["yes", "No", None, "1"], "bool", [True, False, None, True], id="text-bool"),
        pytest.param([1, 0, None], "bool", [True, False, None], id="int-bool"),
        pytest.param([1, 22, None], "category", ["1", "22", None], id="numbers-as-text"),
    ],
)
def test_coerce(values: list, kind: str, expected: list) -> None:
    result = tables.coerce(pd.Series(values), kind, "x")
    got = [None if pd.isna(value) else value for value in result.astype(object)]
    assert got == [None if value is None or value is np.nan else value for value in expected]


def test_coerce_dates_to_naive_timestamps() -> None:
    result = tables.coerce(pd.Series(["2024-01-31", "2024-02-01T12:00:00", None]), "date", "x")
    assert pd.api.types.is_datetime64_any_dtype(result.dtype)
    assert result.iloc[1] == pd.Timestamp("2024-02-01 12:00")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(["1", "x2", "3"], ("x2", 2), id="mostly-numbers"),
        pytest.param(["red", "blue", "7"], None, id="mostly-words"),
        pytest.param(["1", "2"], None, id="all-numbers"),
    ],
)
def test_numeric_text_value(values: list, expected) -> None:
    assert tables.numeric_text_value(pd.Series(values)) == expected


def test_a_csv_in_another_encoding_says_so(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    rows = ["city,x,label"] + [f"{'café' if i % 3 == 0 else 'paris'},{i},{i % 2}" for i in range(9)]
    path.write_bytes("\n".join(rows).encode("latin-1"))
    with pytest.raises(
        UserError,
        match=r"latin\.csv: column 'city' is not UTF-8 text \(another encoding, e\.g\. Latin-1 "
        r"or Windows-1252\); allowed: UTF-8 CSV files; convert it, e\.g\. `iconv -f latin1",
    ):
        tables.read_table(path)
