"""A pipeline file that is missing or broken ends in one line naming the stage that writes
it and how to get it back, never a traceback (JSON, Parquet, model files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprotrain.config import paths
from reprotrain.config.errors import UserError
from reprotrain.data import io, tables
from reprotrain.models.model import load_model


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # pipeline paths are relative to the project root
    return tmp_path


def test_a_missing_split_names_the_stage_to_run(root: Path) -> None:
    message = (
        r"^data/split/train.parquet: missing; it is written by stage `split`: run "
        r"`dvc repro split` \(or `dvc checkout data/split/train.parquet` for the committed one\)$"
    )
    with pytest.raises(UserError, match=message):
        tables.read_frame(paths.SPLIT_FILES["train"])


def test_a_schema_that_is_not_json_says_where(root: Path) -> None:
    paths.PREPARED_DIR.mkdir(parents=True)
    paths.SCHEMA.write_text("{not json")
    message = (
        r"^data/prepared/schema.json: not valid JSON \(line 1 column 2: Expecting property "
        r"name enclosed in double quotes\); it is written by stage `prepare`: rerun it with "
        r"`dvc repro --force prepare`"
    )
    with pytest.raises(UserError, match=message):
        io.read_json(paths.SCHEMA)


def test_a_truncated_parquet_file_is_refused(root: Path) -> None:
    import pandas as pd

    paths.PREPARED_DIR.mkdir(parents=True)
    pd.DataFrame({"a": range(100)}).to_parquet(paths.PREPARED_DATA)
    paths.PREPARED_DATA.write_bytes(paths.PREPARED_DATA.read_bytes()[:300])
    with pytest.raises(UserError, match=r"^data/prepared/data.parquet: not a readable Parquet"):
        next(tables.read_batches(paths.PREPARED_DATA))
    with pytest.raises(UserError, match=r"written by stage `prepare`"):
        tables.read_parquet(paths.PREPARED_DATA)


def test_committed_metrics_come_back_from_git(root: Path) -> None:
    paths.METRICS_DIR.mkdir()
    paths.TRAIN_METRICS.write_text("{oops")
    with pytest.raises(UserError, match=r"`git checkout -- metrics/train.json` for the committed"):
        io.read_json(paths.TRAIN_METRICS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", r"models/tuned/model.json: not valid JSON \(line 1 column 1"),
        ('{"family": "keras"}', r"'family' must be torch or sklearn, got 'keras'"),
        ("[1, 2]", r"'family' must be torch or sklearn, got None"),
    ],
    ids=["not-json", "unknown-family", "not-an-object"],
)
def test_a_broken_model_file_is_one_line(root: Path, text: str, message: str) -> None:
    paths.TUNED_DIR.mkdir(parents=True)
    (paths.TUNED_DIR / "model.json").write_text(text)
    with pytest.raises(UserError, match=message):
        load_model(paths.TUNED_DIR)


def test_a_file_outside_the_pipeline_is_named_without_a_stage(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.json"
    path.write_text("[")
    with pytest.raises(UserError, match=r"elsewhere.json: not valid JSON \(line 1 column 2"):
        io.read_json(path)
