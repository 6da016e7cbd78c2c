"""Every bad input of the table in docs/data.md: one line naming the file or key, what is allowed
and what was given; nothing written. A few run the real command in a subprocess (exit
status, stderr, no traceback, files untouched); the rest call the stage in-process.

Also: a stage killed with SIGKILL in the middle of writing leaves the previous output.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import repo_params
import yaml
from PIL import Image
from project_copy import REPO_ROOT

from reprotrain import config
from reprotrain.config.errors import UserError
from reprotrain.config.paths import PREPARE_METRICS, PREPARED_DATA, SCHEMA
from reprotrain.data import datasets, io, outputs
from reprotrain.data.features import fit_preprocessor
from reprotrain.models.model import build_model, save_model
from stages import prepare, split

GOOD_CSV = "a,b,label\n1.5,x,0\n2.5,y,1\n3.5,x,0\n4.5,y,1\n"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root and its bytes."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def run_command(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert re.match("error: " + message, lines[0]), lines[0]


@pytest.fixture
def previous_outputs(workdir):
    """A working dir whose data/prepared holds a previous run's outputs."""

    def make(params: dict) -> Path:
        root = workdir(params)
        io.write_parquet(PREPARED_DATA, pd.DataFrame({"old": [1, 2]}))
        io.write_json(SCHEMA, {"previous": True})
        io.write_json(PREPARE_METRICS, {"previous": True})
        return root

    return make


# --- in a subprocess: the real command line -------------------------------------------


@pytest.mark.parametrize(
    ("files", "params", "message"),
    [  # one case as a command; the rest of prepare's bad data in-process, below
        pytest.param(
            {"data.csv": "a,label\n1,0\nx2,1\n3,0\n4,1\n"},
            {"prepare": {"source": "data.csv", "target": "label"}},
            r"data\.csv: column 'a' must be numeric, got non-numeric value 'x2' \(row 2\); if "
            r"it is text, set prepare\.column_types\.a: category$",
            id="non-numeric-value",
        ),
    ],
)
def test_prepare_command_refuses_bad_data(
    previous_outputs, files: dict, params: dict, message: str
) -> None:
    root = previous_outputs(params)
    for name, content in files.items():
        (root / name).write_text(content)
    before = snapshot(root)
    assert_one_line_error(run_command(root, "stages.prepare"), message)
    assert snapshot(root) == before


@pytest.mark.slow
def test_split_command_refuses_an_empty_split(previous_outputs) -> None:
    root = previous_outputs({"split": {"train": 0.9, "dev": 0.05, "test": 0.05}})
    frame = pd.DataFrame({"x": np.arange(10.0), "label": [0, 1] * 5})
    io.write_parquet(PREPARED_DATA, frame)
    datasets.build_schema(frame, "label", "classification", "t", None).write(SCHEMA)
    before = snapshot(root)
    assert_one_line_error(
        run_command(root, "stages.split"),
        r"params\.yaml: split\.dev: fraction 0\.05 of 10 rows leaves the dev split empty; "
        r"allowed: a fraction giving at least 1 row$",
    )
    assert snapshot(root) == before


@pytest.fixture
def model_dir(workdir, classification_frame) -> Path:
    root = workdir()
    schema = datasets.build_schema(classification_frame, "label", "classification", "t", None)
    preprocessor = fit_preprocessor(classification_frame, schema, repo_params.features())
    model = build_model(
        repo_params.parse("train", {"model": "logistic_regression"}), schema, seed=0
    )
    arrays = (
        preprocessor.transform(classification_frame),
        datasets.encode_target(classification_frame, schema),
    )
    model.fit(arrays, arrays)
    save_model(model, preprocessor, root / "model")
    classification_frame.drop(columns="label").to_csv(root / "new.csv", index=False)
    (root / "predictions.csv").write_text("previous\n")
    return root / "model"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _plant_code(path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(FunctionTransformer(func=os.system), path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("file", "damage", "in_subprocess", "message"),
    [
        pytest.param(
            "model.skops",
            _truncate,
            True,
            r"model/model\.skops: corrupt or unreadable model file \(\w+\)$",
            id="truncated-model",
        ),
        pytest.param(
            "preprocessor.skops",
            _truncate,
            False,
            r"model/preprocessor\.skops: corrupt or unreadable preprocessor \(\w+\)$",
            id="truncated-preprocessor",
        ),
        pytest.param(
            "model.skops",
            _plant_code,
            False,
            r"model/model\.skops: refusing to load; it holds types outside the allow-list .*"
            r"(posix|nt)\.system",
            id="model-runs-code",
        ),
        pytest.param(
            "preprocessor.skops",
            _plant_code,
            True,
            r"model/preprocessor\.skops: refusing to load; it holds types outside the "
            r"allow-list .*(posix|nt)\.system",
            id="preprocessor-runs-code",
        ),
    ],
)
def test_predict_refuses_bad_model_files(
    model_dir: Path, file: str, damage, in_subprocess: bool, message: str
) -> None:
    from reprotrain.cli import predict

    damage(model_dir / file)
    root = model_dir.parent
    before = snapshot(root)
    args = ["--model", "model", "--input", "new.csv", "--output", "predictions.csv"]
    if in_subprocess:
        assert_one_line_error(run_command(root, "reprotrain.cli.predict", *args), message)
    else:
        with pytest.raises(UserError, match=message):
            predict.main(args)
    assert snapshot(root) == before


# --- in-process: params ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "sections", "message"),
    [
        pytest.param(
            {"prepare": {"sorce": "x.csv"}},
            ("prepare",),
            r"params\.yaml: unknown key 'prepare\.sorce'; allowed: source, target, task, "
            r"drop_missing_target, column_types, image",
            id="misspelled-key",
        ),
        pytest.param(
            {"split": {"stratify": "yes"}},
            ("split",),
            r"params\.yaml: split\.stratify: Input should be a valid boolean, got 'yes'",
            id="wrong-type",
        ),
        pytest.param(
            {"features": {"scale": "zscore"}},
            ("features",),
            r"params\.yaml: features\.scale: Input should be 'none', 'standard', 'minmax' or "
            r"'robust', got 'zscore'",
            id="wrong-choice",
        ),
        pytest.param(
            {"prepare": {"column_types": {"zip": "text"}}},
            ("prepare",),
            r"params\.yaml: prepare\.column_types\.zip: Input should be 'numeric', 'bool', "
            r"'date' or 'category', got 'text'",
            id="wrong-column-kind",
        ),
        pytest.param(
            {"train": {"model": "xgboost"}},
            ("train",),
            r"params\.yaml: train\.model: must be one of auto, mlp, .*, got 'xgboost'",
            id="unknown-model",
        ),
    ],
)
def test_params_errors(workdir, params: dict, sections: tuple, message: str) -> None:
    workdir(params)
    with pytest.raises(UserError, match=message):
        config.load(*sections)


# --- in-process: data files through the prepare stage ----------------------------------


def _image_folder(root: Path) -> None:
    for label in ("a", "b"):
        (root / "images" / label).mkdir(parents=True)
        Image.new("RGB", (4, 4), color=(10, 20, 30)).save(root / "images" / label / "ok.png")
    (root / "images" / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")


@pytest.mark.parametrize(
    ("files", "params", "message"),
    [
        pytest.param(
            {},
            {"source": "sklearn:mnist"},
            r"params\.yaml: prepare\.source: unknown dataset 'sklearn:mnist'; allowed: "
            r"sklearn:digits, .* or a path to a \.csv/\.parquet file, a \.jsonl file or an "
            r"image folder",
            id="unknown-dataset",
        ),
        pytest.param(
            {},
            {"source": "absent.csv", "target": "label"},
            r"absent\.csv: data file not found",
            id="missing-file",
        ),
        pytest.param(
            {"data.csv": ""},
            {"source": "data.csv", "target": "label"},
            r"data\.csv: file is empty; expected a \.csv table with a header",
            id="empty-file",
        ),
        pytest.param(
            {"data.csv": "a,label\n"},
            {"source": "data.csv", "target": "label"},
            r"data\.csv: file has no data rows",
            id="header-only",
        ),
        pytest.param(
            {"data.csv": "a,label\n1,0\n2,0,7\n"},
            {"source": "data.csv", "target": "label"},
            r"data\.csv: not a valid CSV file \(CSV parse error: Row #3: Expected 2 columns, got 3",
            id="invalid-csv",
        ),
        pytest.param(
            {"data.jsonl": '{"a": 1, "label": 0}\n{"a": 2, "label": \n'},
            {"source": "data.jsonl", "target": "label"},
            r"data\.jsonl: not a valid JSONL file \(JSON parse error",
            id="invalid-jsonl",
        ),
        pytest.param(
            {"data.csv": "a,label\n1,x\n2,x\n"},
            {"source": "data.csv", "target": "label"},
            r"data\.csv: classification target 'label' needs at least 2 classes, got 1",
            id="one-class",
        ),
        pytest.param(
            {"data.csv": "a,empty,label\n1,,0\n2,,1\n"},
            {"source": "data.csv", "target": "label"},
            r"data\.csv: column 'empty' is entirely empty; allowed: a column with at least one "
            r"value",
            id="empty-column",
        ),
        pytest.param(
            {"data.csv": "a,label\n1,0\n2,1\n"},
            {"source": "data.xlsx", "target": "label"},
            r"params\.yaml: prepare\.source: unsupported file type '\.xlsx' for data\.xlsx; "
            r"allowed: sklearn:<name>, \.csv, \.parquet, \.jsonl, \.ndjson or an image folder",
            id="unsupported-file-type",
        ),
        pytest.param(
            {"data.csv": "a,label\n1,0\n2,\n3,1\n"},
            {"source": "data.csv", "target": "label"},
            r"data\.csv: target column 'label' has 1 missing values; allowed: none, or set "
            r"prepare\.drop_missing_target: true to drop those rows$",
            id="target-missing-values",
        ),
        pytest.param(
            {"data.csv": "a,b\n1,2\n"},
            {"source": "data.csv", "target": "label"},
            r"data\.csv: target column 'label' not found; columns are: a, b$",
            id="missing-target-column",
        ),
        pytest.param(
            {"data.parquet": "PAR1 but not really"},
            {"source": "data.parquet", "target": "label"},
            r"data\.parquet: not a valid PARQUET file \(.*magic bytes not found",
            id="invalid-parquet",
        ),
        pytest.param(
            "images",
            {"source": "images", "image": {"size": [4, 4]}},
            r"images/b/broken\.png: cannot decode image \(\w+\); allowed: PNG or JPEG files",
            id="undecodable-image",
        ),
    ],
)
def test_prepare_refuses(previous_outputs, files, params: dict, message: str) -> None:
    root = previous_outputs({"prepare": params})
    if files == "images":
        _image_folder(root)
    else:
        for name, content in files.items():
            (root / name).write_text(content)
    before = snapshot(root)
    with pytest.raises(UserError, match=message):
        prepare.main()
    assert snapshot(root) == before


def test_drop_missing_target_counts_the_rows(workdir) -> None:
    root = workdir(
        {"prepare": {"source": "data.csv", "target": "label", "drop_missing_target": True}}
    )
    (root / "data.csv").write_text("a,label\n1,0\n2,\n3,1\n4,\n5,0\n")
    prepare.main()
    assert io.read_json(PREPARE_METRICS)["dropped_missing_target"] == 2
    assert io.read_json(PREPARE_METRICS)["rows"] == 3
    assert io.read_json(SCHEMA)["n_rows"] == 3


def test_split_refuses_before_writing(previous_outputs) -> None:
    previous_outputs({"split": {"time_column": "label"}})
    frame = pd.DataFrame({"x": np.arange(10.0), "label": ["a", "b"] * 5})
    io.write_parquet(PREPARED_DATA, frame)
    datasets.build_schema(frame, "label", "classification", "t", None).write(SCHEMA)
    with pytest.raises(UserError, match=r"split\.time_column: column 'label' must hold dates"):
        split.main()
    assert not Path("data/split").exists()


# --- a stage killed mid-write ---------------------------------------------------------


@pytest.mark.slow
def test_sigkill_mid_write_leaves_the_previous_output(workdir) -> None:
    """SIGKILL `prepare` while its Parquet file is being written (into its staging folder):
    the old file stays whole, and the next run clears the killed run's staging."""
    root = workdir({"prepare": {"source": "big.csv", "target": "label"}})
    rng = np.random.default_rng(0)
    rows = 400_000
    big = pd.DataFrame(rng.normal(size=(rows, 8)), columns=[f"x{i}" for i in range(8)])
    big["label"] = rng.integers(0, 2, rows)
    big.to_csv(root / "big.csv", index=False, float_format="%.5f")
    old = pd.DataFrame({"x0": [1.0, 2.0], "label": [0, 1]})
    io.write_parquet(PREPARED_DATA, old)
    previous = PREPARED_DATA.read_bytes()
    staging = root / outputs.STAGING / "prepare" / "new" / PREPARED_DATA.parent

    caught = False
    for _ in range(3):  # the write window is wide; retry if the machine was too busy
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        process = subprocess.Popen([sys.executable, "-m", "stages.prepare"], cwd=root, env=env)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if any(staging.glob(".data.parquet.*.tmp")):
                process.send_signal(signal.SIGKILL)
                caught = True
                break
            time.sleep(0.001)
        process.wait()
        if caught:
            break
        io.write_parquet(PREPARED_DATA, old)  # it finished first: restore, try again
        previous = PREPARED_DATA.read_bytes()
    assert caught, "prepare always finished before its temp file was seen"
    assert process.returncode == -signal.SIGKILL
    assert PREPARED_DATA.read_bytes() == previous
    pd.testing.assert_frame_equal(pd.read_parquet(PREPARED_DATA), old)
    assert any(staging.glob(".data.parquet.*.tmp"))  # the killed writer's temp

    # The next run replaces the file and clears the killed run's temp file.
    (root / "params.yaml").write_text(
        yaml.safe_dump(repo_params.merged({"prepare": {"source": "small.csv", "target": "label"}}))
    )
    big.head(50).to_csv(root / "small.csv", index=False)
    prepare.main()
    assert len(pd.read_parquet(PREPARED_DATA)) == 50
    assert not (root / outputs.STAGING).joinpath("prepare").exists()
    assert not any(PREPARED_DATA.parent.glob(".*.tmp"))
