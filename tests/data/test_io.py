"""Atomic writes leave the old file or the new one, never a half-written one or a temp file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from reprotrain.config.errors import UserError
from reprotrain.data import io


class BoomError(Exception):
    pass


def test_write_json_is_stable_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "out" / "metrics.json"
    io.write_json(path, {"b": 1, "a": {"d": 2.5, "c": [1, 2]}})
    text = path.read_text()
    assert text == json.dumps({"a": {"c": [1, 2], "d": 2.5}, "b": 1}, indent=2) + "\n"
    assert io.read_json(path) == {"a": {"c": [1, 2], "d": 2.5}, "b": 1}
    assert [child.name for child in path.parent.iterdir()] == ["metrics.json"]


def test_write_csv_and_parquet_leave_no_temp_files(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [0.123456789, 2.0], "y": [1, 2]})
    io.write_csv(tmp_path / "table.csv", frame)
    io.write_parquet(tmp_path / "table.parquet", frame)
    assert sorted(child.name for child in tmp_path.iterdir()) == ["table.csv", "table.parquet"]
    assert (tmp_path / "table.csv").read_text() == "x,y\n0.123457,1\n2,2\n"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "table.parquet"), frame)


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    io.write_json(path, {"version": 1})
    with pytest.raises(BoomError), io.atomic_path(path) as tmp:
        tmp.write_text('{"version": 2, "trunc')
        raise BoomError
    assert io.read_json(path) == {"version": 1}
    assert [child.name for child in tmp_path.iterdir()] == ["metrics.json"]


def test_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(BoomError), io.atomic_path(tmp_path / "new.csv") as tmp:
        tmp.write_text("partial")
        raise BoomError
    assert list(tmp_path.iterdir()) == []


def test_unserializable_json_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    io.write_json(path, {"version": 1})
    with pytest.raises(TypeError):
        io.write_json(path, {"version": object()})
    assert io.read_json(path) == {"version": 1}
    assert [child.name for child in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_dir_replaces_the_whole_directory(tmp_path: Path) -> None:
    target = tmp_path / "models" / "model"
    with io.atomic_dir(target) as tmp:
        (tmp / "old-only.txt").write_text("old")
    with io.atomic_dir(target) as tmp:
        (tmp / "seed-0").mkdir()
        (tmp / "seed-0" / "weights.pt").write_text("new")
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "seed-0",
        "seed-0/weights.pt",
    ]
    assert [child.name for child in target.parent.iterdir()] == ["model"]


def test_failed_atomic_dir_keeps_the_old_directory(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with io.atomic_dir(target) as tmp:
        (tmp / "weights.pt").write_text("old")
    with pytest.raises(BoomError), io.atomic_dir(target) as tmp:
        (tmp / "weights.pt").write_text("half")
        raise BoomError
    assert (target / "weights.pt").read_text() == "old"
    assert [child.name for child in tmp_path.iterdir()] == ["model"]


def test_file_digest_is_sha256(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 10
    path.write_bytes(data)
    assert io.file_digest(path, chunk=100) == hashlib.sha256(data).hexdigest()


def test_tree_digest_covers_every_file_and_its_path(tmp_path: Path) -> None:
    def tree(name: str, files: dict[str, bytes]) -> Path:
        root = tmp_path / name
        for relative, data in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(data)
        return root

    files = {"model.json": b"{}", "sub/weights.pt": b"\x00\x01"}
    digest = io.tree_digest(tree("a", files))
    assert digest == io.tree_digest(tree("b", dict(reversed(files.items()))))
    lines = "".join(
        f"{name}\t{hashlib.sha256(data).hexdigest()}\n" for name, data in sorted(files.items())
    )
    assert digest == hashlib.sha256(lines.encode()).hexdigest()
    assert digest != io.tree_digest(tree("byte", {**files, "model.json": b"{ }"}))
    moved = {"model.json": b"{}", "weights.pt": b"\x00\x01"}  # the same bytes, another path
    assert digest != io.tree_digest(tree("moved", moved))
    assert digest != io.tree_digest(tree("extra", {**files, "notes.txt": b""}))


def test_read_json_if_present(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    assert io.read_json_if_present(path, "model schema") is None
    path.write_text('{"classes": [0, 1]}')
    assert io.read_json_if_present(path, "model schema") == {"classes": [0, 1]}
    path.write_bytes(b"\xff{ not json")
    with pytest.raises(UserError, match=r"^model schema: .*schema\.json: not valid JSON \(not "):
        io.read_json_if_present(path, "model schema")
    path.write_text('{"classes": [0, 1')
    with pytest.raises(UserError, match=r"^model schema: .*schema\.json: not valid JSON \(line 1"):
        io.read_json_if_present(path, "model schema")
