"""Chunked Parquet writes: same frame back, lean row groups, ordinary file permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from reprotrain.data import io
from reprotrain.data.tables import read_frame


@pytest.fixture
def small_chunks(monkeypatch) -> None:
    monkeypatch.setattr(io, "PARQUET_CHUNK_ROWS", 100)


def mixed(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "color": pd.Categorical(rng.choice(["red", "blue"], n)),
            "id": pd.Categorical([f"row-{i}" for i in range(n)]),
            "flag": pd.array(rng.choice([True, False], n), dtype="boolean"),
            "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), "D"),
        }
    )


def test_chunked_write_roundtrips(tmp_path: Path, small_chunks) -> None:
    frame = mixed(450)
    io.write_parquet(tmp_path / "all.parquet", frame)
    assert pq.ParquetFile(tmp_path / "all.parquet").metadata.num_row_groups == 5
    back = read_frame(tmp_path / "all.parquet")
    pd.testing.assert_frame_equal(
        back.astype({"id": str, "color": str}), frame.astype({"id": str, "color": str})
    )
    assert isinstance(back["color"].dtype, pd.CategoricalDtype)


def test_selected_rows_only(tmp_path: Path, small_chunks) -> None:
    frame = mixed(300)
    rows = np.arange(0, 300, 7)
    io.write_parquet(tmp_path / "part.parquet", frame, rows)
    back = read_frame(tmp_path / "part.parquet")
    assert back["x"].tolist() == frame["x"].iloc[rows].tolist()


def test_identifier_column_is_not_repeated_in_every_row_group(tmp_path: Path, monkeypatch) -> None:
    """Each row group stores only its own identifiers, not all 40,000 of them."""
    monkeypatch.setattr(io, "PARQUET_CHUNK_ROWS", 4_000)
    frame = mixed(40_000)[["id"]]
    io.write_parquet(tmp_path / "ids.parquet", frame)
    metadata = pq.ParquetFile(tmp_path / "ids.parquet").metadata
    sizes = [metadata.row_group(i).column(0).total_uncompressed_size for i in range(10)]
    assert max(sizes) < 150_000  # 4,000 ids of ~13 bytes; all 40,000 would be ~520,000
    back = read_frame(tmp_path / "ids.parquet")["id"].astype(str)
    assert back.tolist() == frame["id"].astype(str).tolist()


def test_outputs_get_ordinary_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    io.write_json(tmp_path / "m.json", {"a": 1})
    with io.atomic_dir(tmp_path / "model") as tmp:
        (tmp / "w.bin").write_bytes(b"x")
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o777 & ~mask
