"""Preprocessing: fit on train only, every column kind, caps and drops, safe save/load."""

from __future__ import annotations

import logging
import os
import zipfile
from io import BytesIO
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pytest
import repo_params

from reprotrain.config.errors import UserError
from reprotrain.data import datasets, features, io


def mixed_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(10, 2, n),
            "color": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "member": pd.array(rng.choice([True, False], n), dtype="boolean"),
            "joined": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), "D"),
            "user": pd.Categorical([f"u{i}" for i in range(n)]),
            "label": rng.integers(0, 2, n),
        }
    )
    frame.loc[[1, 5], "amount"] = np.nan
    frame.loc[[2], "color"] = np.nan
    frame.loc[[3], "member"] = pd.NA
    frame.loc[[4], "joined"] = pd.NaT
    return frame


def schema_of(frame: pd.DataFrame) -> dict:
    return datasets.build_schema(frame, "label", "classification", "test", None)


def test_imputation_uses_train_statistics_only() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, np.nan, 3.0], "label": [0, 1, 0, 1]})
    dev = pd.DataFrame({"x": [np.nan, 100.0, 200.0], "label": [0, 1, 0]})
    preprocessor = features.fit_preprocessor(train, schema_of(train), repo_params.features())
    assert preprocessor.transform(dev)[:, 0].tolist() == [2.0, 100.0, 200.0]  # train median


def test_every_kind_becomes_numbers() -> None:
    frame = mixed_frame()
    preprocessor = features.fit_preprocessor(frame, schema_of(frame), repo_params.features())
    matrix = preprocessor.transform(frame)
    names = preprocessor.feature_names
    assert matrix.dtype == np.float32 and not np.isnan(matrix).any()
    assert matrix.shape == (60, len(names))
    assert names[:6] == [
        "amount",
        "joined__year",
        "joined__month",
        "joined__day",
        "joined__weekday",
        "joined__epoch_days",
    ]
    year = matrix[:, names.index("joined__year")]
    assert set(year.tolist()) <= {2024.0, 2025.0}
    epoch = matrix[0, names.index("joined__epoch_days")]
    assert epoch == (frame["joined"].iloc[0] - pd.Timestamp(0)).days
    color = [name for name in names if name.startswith("color")]
    assert color == ["color___missing__", "color_blue", "color_green", "color_red"]
    assert matrix[:, [names.index(name) for name in color]].sum(axis=1).tolist() == [1.0] * 60
    assert "member" in names


def test_identifier_like_column_is_dropped_with_a_reason(caplog) -> None:
    frame = mixed_frame()
    with caplog.at_level(logging.WARNING, logger="reprotrain.data.features"):
        preprocessor = features.fit_preprocessor(frame, schema_of(frame), repo_params.features())
    assert "user" not in preprocessor.columns
    assert preprocessor.dropped["user"].startswith("identifier-like: 60 distinct values in 60")
    assert "dropping column 'user': identifier-like" in caplog.text


def test_many_categories_are_capped() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"city": pd.Categorical(rng.choice([f"c{i}" for i in range(40)], 400)), "label": 0}
    )
    frame.loc[0, "label"] = 1
    params = repo_params.features(max_categories=5)
    preprocessor = features.fit_preprocessor(frame, schema_of(frame), params)
    assert preprocessor.columns == ["city"]  # 40 values in 400 rows: capped, not dropped
    assert len(preprocessor.feature_names) == 5
    assert preprocessor.feature_names[-1] == "city_infrequent_sklearn"


def test_rare_categories_by_min_frequency() -> None:
    frame = pd.DataFrame(
        {"kind": pd.Categorical(["a"] * 50 + ["b"] * 45 + ["c"] * 3 + ["d"] * 2), "label": 0}
    )
    frame.loc[0, "label"] = 1
    params = repo_params.features(min_frequency=0.05)
    names = features.fit_preprocessor(frame, schema_of(frame), params).feature_names
    assert names == ["kind_a", "kind_b", "kind_infrequent_sklearn"]


@pytest.mark.parametrize(
    ("encoding", "unseen_row"),
    [
        pytest.param("onehot", [0.0, 0.0, 0.0], id="onehot-all-zeros"),
        pytest.param("ordinal", [-1.0], id="ordinal-minus-one"),
    ],
)
def test_unseen_categories_are_encoded_safely(encoding: str, unseen_row: list) -> None:
    frame = pd.DataFrame({"color": pd.Categorical(["red", "blue", None, "red"]), "label": 0})
    preprocessor = features.fit_preprocessor(
        frame, schema_of(frame), repo_params.features(categorical=encoding)
    )
    new = pd.DataFrame({"color": ["purple"]})
    converted, unseen = preprocessor.check(new, "new.csv")
    assert unseen == {"color": ["purple"]}
    assert preprocessor.transform(converted)[0].tolist() == unseen_row


@pytest.mark.parametrize(
    ("scale", "check"),
    [
        pytest.param("standard", lambda x: np.allclose(x.mean(0), 0, atol=1e-5), id="standard"),
        pytest.param("minmax", lambda x: x.min() == 0 and x.max() == 1, id="minmax"),
        pytest.param("robust", lambda x: np.allclose(np.median(x, 0), 0), id="robust"),
        pytest.param("none", lambda x: x.max() > 100, id="none"),
    ],
)
def test_scaling(scale: str, check) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(500, 50, 101), "label": 0})
    params = repo_params.features(scale=scale)
    matrix = features.fit_preprocessor(frame, schema_of(frame), params).transform(frame)
    assert check(matrix)


@pytest.mark.parametrize(
    ("impute", "missing_indicator", "expected"),
    [
        pytest.param("mean", False, [[5.0], [3.0]], id="mean"),
        pytest.param("zero", False, [[5.0], [0.0]], id="zero"),
        pytest.param("median", True, [[5.0, 0.0], [2.0, 1.0]], id="median-indicator"),
    ],
)
def test_numeric_imputation_options(impute: str, missing_indicator: bool, expected) -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, 6.0, np.nan], "label": 0})  # median 2, mean 3
    params = repo_params.features(numeric_impute=impute, missing_indicator=missing_indicator)
    preprocessor = features.fit_preprocessor(train, schema_of(train), params)
    new = pd.DataFrame({"x": [5.0, np.nan]})
    assert preprocessor.transform(new).tolist() == expected


def test_exclude_by_name() -> None:
    frame = mixed_frame()
    params = repo_params.features(exclude=["amount", "joined"])
    preprocessor = features.fit_preprocessor(frame, schema_of(frame), params)
    assert preprocessor.columns == ["color", "member"]
    assert not any("amount" in name or "joined" in name for name in preprocessor.feature_names)
    preprocessor.transform(frame.drop(columns=["amount", "joined"]))  # excluded: not needed


@pytest.mark.parametrize(
    ("exclude", "message"),
    [
        pytest.param(
            ["amout"],
            r"params\.yaml: features\.exclude: unknown column 'amout'; allowed: feature columns "
            r"amount, color",
            id="unknown",
        ),
        pytest.param(
            ["amount", "color", "member", "joined"],
            r"params\.yaml: features\.exclude: no feature columns left to train on",
            id="everything",
        ),
    ],
)
def test_bad_exclusions(exclude: list, message: str) -> None:
    frame = mixed_frame()
    with pytest.raises(UserError, match=message):
        features.fit_preprocessor(frame, schema_of(frame), repo_params.features(exclude=exclude))


def test_many_numeric_columns_are_fitted_in_parts() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(50, 40)), columns=[f"x{i}" for i in range(40)])
    frame.iloc[::5, 3] = np.nan
    frame["label"] = 0
    preprocessor = features.fit_preprocessor(frame, schema_of(frame), repo_params.features())
    parts = [name for name, _, _ in preprocessor.transformer.transformers_]
    assert parts == ["numeric", *(f"numeric_{i}" for i in range(2, 6))]  # 5 x 8 columns
    assert preprocessor.feature_names == [f"x{i}" for i in range(40)]
    expected = frame.drop(columns="label").fillna(frame["x3"].median()).to_numpy(np.float32)
    assert np.array_equal(preprocessor.transform(frame), expected)


def test_clashing_output_names_get_part_prefixes() -> None:
    frame = pd.DataFrame({"color_red": [1.0, 2.0, 3.0], "color": pd.Categorical(["red"] * 3)})
    frame["label"] = [0, 1, 0]
    names = features.fit_preprocessor(frame, schema_of(frame), repo_params.features()).feature_names
    assert names == ["numeric__color_red", "category__color_red"]


def test_chunked_transform_equals_one_pass(monkeypatch) -> None:
    frame = mixed_frame(n=257)
    preprocessor = features.fit_preprocessor(frame, schema_of(frame), repo_params.features())
    whole = preprocessor.transform(frame)
    monkeypatch.setattr(features, "CHUNK_ROWS", 10)
    assert np.array_equal(preprocessor.transform(frame), whole)


def test_numeric_only_matches_median_imputer() -> None:
    """The default on all-numeric data (digits) is plain median imputation, as before."""
    from sklearn.impute import SimpleImputer

    frame, target, _ = datasets.load_source("sklearn:iris", None)
    frame.loc[::7, "sepal_length_(cm)"] = np.nan
    schema = datasets.build_schema(frame, target, "classification", "iris", None)
    matrix = features.fit_preprocessor(frame, schema, repo_params.features()).transform(frame)
    columns = schema.feature_names
    expected = SimpleImputer(strategy="median").fit_transform(frame[columns]).astype(np.float32)
    assert np.array_equal(matrix, expected)


def test_check_reports_wrong_types_and_missing_columns() -> None:
    frame = mixed_frame()
    preprocessor = features.fit_preprocessor(frame, schema_of(frame), repo_params.features())
    new = frame.drop(columns="label").head(3).astype({"amount": object})
    new.loc[1, "amount"] = "ten"
    with pytest.raises(UserError, match=r"new\.csv: column 'amount' must be numeric, got 'ten'"):
        preprocessor.check(new, "new.csv")
    with pytest.raises(UserError, match=r"new\.csv: missing feature column\(s\) 'color'"):
        preprocessor.check(frame.drop(columns="color"), "new.csv")


def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    frame = mixed_frame()
    schema = schema_of(frame)
    params = repo_params.features(scale="standard", categorical="ordinal")
    preprocessor = features.fit_preprocessor(frame, schema, params)
    preprocessor.save(tmp_path)
    loaded = features.load_preprocessor(tmp_path)
    assert np.array_equal(loaded.transform(frame), preprocessor.transform(frame))
    assert loaded.kinds == preprocessor.kinds and loaded.dropped == preprocessor.dropped
    assert loaded.schema == schema
    saved = io.read_json(tmp_path / "schema.json")  # the schema, plus what the model uses
    assert saved["preprocessing"]["columns"] == ["amount", "color", "member", "joined"]
    assert saved["preprocessing"]["dropped"].keys() == {"user"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sklearn.preprocessing._encoders.OneHotEncoder", True),
        ("numpy.dtype", True),
        ("builtins.dict", True),
        ("builtins.eval", False),
        ("builtins.exec", False),
        ("numpy.load", False),
        ("posix.system", False),
        ("sklearn.utils.nonexistent", False),
    ],
)
def test_trusted_types_are_classes_only(name: str, expected: bool) -> None:
    assert features.trusted(name) is expected


def test_preprocessors_fitted_alike_save_to_identical_bytes(tmp_path: Path) -> None:
    """skops alone names arrays by `id()` and stamps entries with the time of writing; the
    canonical file depends on the fitted state only, and loads back to the same transform."""
    frame = mixed_frame()
    params = repo_params.features(scale="standard")
    saved = {}
    for copy in ("first", "again"):
        preprocessor = features.fit_preprocessor(frame, schema_of(frame), params)
        preprocessor.save(tmp_path / copy)
        saved[copy] = (tmp_path / copy / features.FILE).read_bytes()
    assert saved["first"] == saved["again"]

    with zipfile.ZipFile(tmp_path / "first" / features.FILE) as archive:
        entries = archive.infolist()
    names = [entry.filename for entry in entries]
    assert names[-1] == features.SKOPS_SCHEMA
    assert [PurePosixPath(name).stem for name in names[:-1]] == [
        str(rank) for rank in range(1, len(names))
    ]
    assert {entry.date_time for entry in entries} == {features.ZIP_DATE}
    first, again = (features.load_preprocessor(tmp_path / copy) for copy in ("first", "again"))
    assert np.array_equal(first.transform(frame), preprocessor.transform(frame))
    assert np.array_equal(again.transform(frame), preprocessor.transform(frame))
    assert first.kinds == preprocessor.kinds and first.dropped == preprocessor.dropped


def test_canonical_skops_keeps_shared_references_and_bytes() -> None:
    import skops.io as sio

    shared = np.arange(4.0)
    state = {"a": shared, "b": shared, "raw": b"\x00\x01", "other": np.ones(2)}
    data = features.canonical_skops(sio.dumps(state))
    with zipfile.ZipFile(BytesIO(data)) as archive:
        assert archive.namelist() == ["1.npy", "2.bin", "3.npy", features.SKOPS_SCHEMA]
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert loaded["a"] is loaded["b"]  # one array, as in the state that was dumped
    assert np.array_equal(loaded["a"], shared) and np.array_equal(loaded["other"], np.ones(2))
    assert loaded["raw"] == b"\x00\x01"


def test_canonical_skops_refuses_a_member_the_schema_does_not_name() -> None:
    import skops.io as sio

    buffer = BytesIO(sio.dumps({"x": np.zeros(3)}))
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("extra.npy", b"")
    with pytest.raises(ValueError, match=r"members not named in schema\.json: \['extra\.npy'\]"):
        features.canonical_skops(buffer.getvalue())


@pytest.mark.parametrize("writer", ["skops", "dump_skops"])
@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        pytest.param("os.system", r"(posix|nt)\.system", id="os-system"),
        pytest.param("eval", r"builtins\.eval", id="builtins-eval"),
    ],
)
def test_preprocessor_that_would_run_code_is_refused(
    tmp_path: Path, payload: str, shown: str, writer: str
) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    function = os.system if payload == "os.system" else eval
    state = {"transformer": FunctionTransformer(func=function), "columns": ["x"]}
    dump = sio.dump if writer == "skops" else features.dump_skops
    dump(state, tmp_path / features.FILE)
    with pytest.raises(
        UserError,
        match=r"preprocessor\.skops: refusing to load; it holds types outside the "
        r"allow-list .*" + shown,
    ):
        features.load_preprocessor(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", r"corrupt or unreadable preprocessor \(", id="empty"),
        pytest.param(b"PK\x03\x04 truncated", r"corrupt or unreadable preprocessor \(", id="zip"),
    ],
)
def test_corrupt_preprocessor(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / features.FILE).write_bytes(content)
    with pytest.raises(UserError, match=message):
        features.load_preprocessor(tmp_path)


def test_missing_preprocessor(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"preprocessor\.skops: preprocessor file not found"):
        features.load_preprocessor(tmp_path)
