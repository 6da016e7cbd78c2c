"""Atomic file output and stable hashing.

Every output goes to a temporary file in the same directory and is renamed into
place, so a stage killed at any moment leaves the previous file or none.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reprotrain.config.errors import UserError
from reprotrain.config.paths import METRICS_DIR, producer

if TYPE_CHECKING:
    import pandas as pd


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed mid-write leaves its temp file; the next write of `path` removes it
    # (it would otherwise end up in a DVC output directory).
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if stale.is_file():
            stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would give
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; swap it into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 -> what mkdir() would give
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    """Stable JSON: sorted keys, fixed indent, newline at the end."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def broken_input(path: Path, problem: str) -> UserError:
    """The one-line error for a pipeline file that is missing or unreadable: what, where,
    and how to get it back (the stage that writes it)."""
    stage = producer(path)
    if stage is None:
        return UserError(f"{path}: {problem}")
    again = "run" if problem == "missing" else "rerun it with"
    force = "" if problem == "missing" else " --force"
    # metrics/ is committed to git (cache: false); data/ and models/ are in DVC's cache
    restore = "git checkout --" if METRICS_DIR in Path(path).parents else "dvc checkout"
    return UserError(
        f"{path}: {problem}; it is written by stage `{stage}`: {again} "
        f"`dvc repro{force} {stage}` (or `{restore} {path}` for the committed one)"
    )


def read_json(path: Path) -> Any:
    """A JSON file; missing or not JSON is a UserError naming the stage that writes it."""
    try:
        with Path(path).open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise broken_input(path, "missing") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise broken_input(path, f"not valid JSON ({where})") from None
    except UnicodeDecodeError:
        raise broken_input(path, "not valid JSON (not UTF-8 text)") from None


def read_json_if_present(path: Path, context: str) -> Any:
    """The JSON in `path`, or None when there is no such file; a file that is not JSON is
    `read_json`'s UserError, after "<context>: "."""
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except UserError as exc:
        raise UserError(f"{context}: {exc}") from None


PARQUET_CHUNK_ROWS = 1 << 17


def write_parquet(path: Path, frame: pd.DataFrame, rows: np.ndarray | None = None) -> None:
    """`frame` (or only its `rows`, positions) to Parquet, converted in row chunks.

    Chunks keep the temporary Arrow copy small: peak memory stays near the frame itself.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    positions = np.arange(len(frame)) if rows is None else np.asarray(rows)
    chunks = [
        positions[start : start + PARQUET_CHUNK_ROWS]
        for start in range(0, len(positions), PARQUET_CHUNK_ROWS)
    ] or [positions]
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for chunk in chunks:
            part = _used_categories(frame.iloc[chunk])
            table = pa.Table.from_pandas(part, schema=schema, preserve_index=False)
            writer.write_table(table, row_group_size=PARQUET_CHUNK_ROWS)


def _used_categories(part: pd.DataFrame) -> pd.DataFrame:
    """Categoricals with more categories than rows keep only the used ones.

    Each row group stores its column's dictionary: without this, an identifier-like
    column would store all of its values again in every row group.
    """
    import pandas as pd

    for column in part.columns:
        series = part[column]
        if isinstance(series.dtype, pd.CategoricalDtype) and len(series.cat.categories) > len(part):
            part[column] = series.cat.remove_unused_categories()
    return part


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(directory: Path) -> str:
    """SHA-256 of a directory's files: of one line `<relative path>\t<file SHA-256>` per
    file, sorted by path. Equal for two directories that hold the same bytes."""
    directory = Path(directory)
    files = sorted(
        (path.relative_to(directory).as_posix(), path)
        for path in directory.rglob("*")
        if path.is_file()
    )
    lines = "".join(f"{name}\t{file_digest(path)}\n" for name, path in files)
    return hashlib.sha256(lines.encode()).hexdigest()
