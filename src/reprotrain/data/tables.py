"""Tabular files (CSV, Parquet, JSON Lines) -> typed frames, and column kinds.

Every feature column has one of four kinds: `numeric` (integers, floats), `bool`, `date`
(dates and timestamps) and `category` (text). Text is held as a pandas categorical, so a
million rows of a ten-valued column cost a million small integer codes, not a million
Python strings (identifier-like text stays Arrow-backed strings). Files are read with
pyarrow, CSV streamed block by block, so memory stays near the size of the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotrain.config.errors import UserError
from reprotrain.data import io

FORMATS = {".csv": "CSV", ".parquet": "PARQUET", ".jsonl": "JSONL", ".ndjson": "JSONL"}
KINDS = ("numeric", "bool", "date", "category")
KIND_WORDS = {
    "numeric": "numeric",
    "bool": "true/false",
    "date": "a date (ISO 8601, e.g. 2024-01-31)",
    "category": "text",
}
TRUE_TEXT = frozenset({"true", "t", "yes", "y", "1"})
FALSE_TEXT = frozenset({"false", "f", "no", "n", "0"})
# A text column is taken as a numeric column with bad values when at least this share
# of its distinct values are numbers (e.g. "1", "x2", "3").
NUMERIC_TEXT_SHARE = 0.5
SAMPLE = 10_000  # distinct values looked at first
_CSV_BLOCK = 8 << 20


def check_suffix(path: Path, key: str) -> None:
    """Refuse a file type we cannot read, naming the key the path came from."""
    if path.suffix.lower() not in FORMATS:
        raise UserError(
            f"{key}: unsupported file type {path.suffix!r} for {path}; "
            f"allowed: {', '.join(FORMATS)}"
        )


def read_table(path: Path, column_types: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a CSV, Parquet or JSON Lines file into a frame with normalized column kinds."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: data file not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty; expected a {path.suffix} table with a header")
    use_lean_memory_pool()
    column_types = dict(column_types or {})
    table, restore = _read_arrow(path, column_types)
    _check_names(path, table.column_names)
    if table.num_rows == 0:
        raise UserError(f"{path}: file has no data rows")
    unknown = [name for name in column_types if name not in table.column_names]
    if unknown:
        raise UserError(
            f"params.yaml: prepare.column_types: unknown column {unknown[0]!r} in {path}; "
            f"columns are: {', '.join(table.column_names[:20])}"
        )
    table = identifiers_as_strings(_normalize(path, table))  # rebound: freed as it converts
    frame = to_frame(table)
    del table
    for name, how in restore.items():
        frame[name] = _restore(frame[name], how, f"{path}: column {name!r}")
    for name, kind in column_types.items():
        frame[name] = coerce(frame[name], kind, f"{path}: column {name!r}")
    return frame


def use_lean_memory_pool() -> None:
    """Arrow on jemalloc, returning freed memory at once (when this pyarrow has it).

    The default pool keeps freed blocks for reuse: reading a large file would leave the
    process holding several times the data it still uses.
    """
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return
    pa.set_memory_pool(pool)


def _restore(series: pd.Series, how: str, where: str) -> pd.Series:
    """Undo what streaming needed: whole floats back to integers; late text kinded."""
    if how == "integer":
        values = series.to_numpy()
        if not np.isnan(values).any() and np.all(np.mod(values, 1) == 0):
            return series.astype(np.int64)
        return series
    kind = text_kind(series)
    return series if kind == "category" else coerce(series, kind, where)


def text_kind(series: pd.Series) -> str:
    """The kind a text column's values all fit: numeric, bool, date, else category."""
    values = pd.Series(series.dropna().unique()).astype(str)
    if values.empty:
        return "category"
    if pd.to_numeric(values, errors="coerce").notna().all():
        return "numeric"
    if values.str.strip().str.lower().isin(TRUE_TEXT | FALSE_TEXT).all():
        return "bool"
    if pd.to_datetime(values, errors="coerce", format="ISO8601").notna().all():
        return "date"
    return "category"


def identifiers_as_strings(table: Any) -> Any:
    """Dictionary-encoded text with more distinct values than half the rows -> plain text.

    Pandas turns dictionary columns into categoricals: right for a ten-valued column, but
    an identifier's categories would be as many as its rows. Plain text stays Arrow-backed
    strings. (Callers rebind their table to the result, so that `to_frame` can free it.)
    """
    import pyarrow as pa

    for index, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type) and pa.types.is_string(column.type.value_type):
            distinct = sum(len(chunk.dictionary) for chunk in column.chunks)
            if distinct > table.num_rows / 2:
                table = table.set_column(index, table.field(index).name, column.cast(pa.string()))
    return table


def to_frame(table: Any) -> pd.DataFrame:
    """An arrow table -> pandas, freeing arrow buffers as columns convert.

    Hold no other table sharing its columns: their buffers could not be freed.
    """
    import pyarrow as pa

    return table.to_pandas(
        split_blocks=True,
        self_destruct=True,
        date_as_object=False,
        types_mapper={pa.bool_(): pd.BooleanDtype()}.get,
    )


def open_parquet(path: Path, **options: Any) -> Any:
    """`pyarrow.parquet.ParquetFile` of a pipeline file; missing or not Parquet (a
    truncated write, another format) is a UserError naming the stage that writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path, **options)
    except FileNotFoundError:
        raise io.broken_input(path, "missing") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise io.broken_input(path, f"not a readable Parquet file ({exc})") from None


def read_parquet(path: Path) -> pd.DataFrame:
    """`pandas.read_parquet` of a pipeline file, its footer checked first (`open_parquet`)."""
    open_parquet(path)
    return pd.read_parquet(path)


def read_frame(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file written by this pipeline -> pandas, without a consolidating copy."""
    import pyarrow as pa

    use_lean_memory_pool()
    # Row group by row group: the reader buffers one group, not the whole file.
    parquet = open_parquet(path, pre_buffer=False)
    groups = [
        parquet.read_row_group(index, columns=columns) for index in range(parquet.num_row_groups)
    ]
    table = pa.concat_tables(groups) if groups else parquet.schema_arrow.empty_table()
    del groups, parquet
    table = identifiers_as_strings(table)
    return to_frame(table)


def read_head(path: Path, rows: int = 5) -> pd.DataFrame:
    """The first `rows` rows of a Parquet file, without reading the rest."""
    import pyarrow as pa

    parquet = open_parquet(path)
    batch = next(parquet.iter_batches(batch_size=rows), None)
    if batch is None:
        return to_frame(parquet.schema_arrow.empty_table())
    return to_frame(pa.Table.from_batches([batch]))


def row_count(path: Path) -> int:
    """Rows of a Parquet file, from its metadata."""

    return open_parquet(path).metadata.num_rows


def read_batches(
    path: Path, columns: list[str] | None = None, rows: int = 1 << 16
) -> Iterator[pd.DataFrame]:
    """A Parquet file written by this pipeline as frames of at most `rows` rows, read one
    at a time (one frame, empty, for a file without rows).

    Text stays categorical in every batch (no `identifiers_as_strings`: a batch's share
    of distinct values says nothing about the column).
    """
    import pyarrow as pa

    use_lean_memory_pool()
    parquet = open_parquet(path, pre_buffer=False)
    if parquet.metadata.num_rows == 0:
        empty = parquet.schema_arrow.empty_table()
        yield to_frame(empty.select(columns) if columns is not None else empty)
        return
    for batch in parquet.iter_batches(batch_size=rows, columns=columns):
        yield to_frame(pa.Table.from_batches([batch]))


def _read_arrow(path: Path, column_types: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """The file as an Arrow table, and the columns to re-kind after conversion."""
    import pyarrow as pa

    kind = FORMATS[path.suffix.lower()]
    try:
        if kind == "CSV":
            return _read_csv(path, column_types)
        if kind == "PARQUET":
            import pyarrow.parquet as pq

            return pq.read_table(path), {}
        import pyarrow.json as pajson

        options = pajson.ReadOptions(block_size=_CSV_BLOCK)
        return pajson.read_json(path, read_options=options), {}
    except pa.ArrowInvalid as exc:
        raise UserError(_arrow_message(path, kind, str(exc))) from None
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is the user's file
        raise UserError(f"{path}: not a valid {kind} file ({type(exc).__name__})") from None


def _read_csv(path: Path, column_types: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """Stream the CSV in blocks, dictionary-encoding text as it comes (bounded memory).

    Types are inferred from the first block. Integers are read as floats (a later block
    may hold 1.5; whole columns become integers again), and a column empty in the first
    block as text, kinded afterwards from its values (see `_late_kinds`).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if _odd_quotes(path):
        raise UserError(f"{path}: not a valid CSV file (a quoted field is never closed)")
    read = pacsv.ReadOptions(block_size=_CSV_BLOCK)
    options = {
        "strings_can_be_null": True,
        "true_values": ["true", "True", "TRUE"],
        "false_values": ["false", "False", "FALSE"],
    }
    inferred = pacsv.open_csv(
        path, read_options=read, convert_options=pacsv.ConvertOptions(**options)
    ).schema
    _check_names(path, inferred.names)
    types = {}
    for field in inferred:
        # Declared columns are read as text and converted by `coerce`, which names the
        # first bad value and its row.
        if field.name in column_types or pa.types.is_null(field.type):
            types[field.name] = pa.string()
        elif pa.types.is_integer(field.type):
            types[field.name] = pa.float64()
    reader = pacsv.open_csv(
        path, read_options=read, convert_options=pacsv.ConvertOptions(column_types=types, **options)
    )
    batches = [_encode_text(batch) for batch in reader]
    table = pa.Table.from_batches(batches) if batches else reader.schema.empty_table()
    restore = {}
    for name in types:
        if name in column_types:
            continue
        restore[name] = "integer" if pa.types.is_integer(inferred.field(name).type) else "infer"
    return table, restore


def _encode_text(batch: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = [
        pc.dictionary_encode(column) if pa.types.is_string(column.type) else column
        for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _odd_quotes(path: Path, chunk: int = 1 << 24) -> bool:
    """An odd number of double quotes means a quoted field runs to the end of the file."""
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            count += block.count(b'"')
    return count % 2 == 1


_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to (\w+): invalid value '(.*)'"
)
_JSON_TYPE = re.compile(r"Column\(/([^)]*)\) changed from (\w+) to (\w+) in row (\d+)")


def _arrow_message(path: Path, kind: str, text: str) -> str:
    """One line from a pyarrow parse error: the column and value when it names them."""
    first = text.strip().splitlines()[0] if text.strip() else "unreadable"
    conversion = _CONVERSION.search(first)
    if conversion:
        index, row, arrow_type, value = conversion.groups()
        header = _csv_header(path)
        column = header[int(index)] if int(index) < len(header) else f"#{index}"
        want = {
            "bool": "true/false",
            "timestamp": KIND_WORDS["date"],
            "date32": KIND_WORDS["date"],
        }.get(arrow_type, "numeric")
        where = f" (line {int(row) + 1})" if row else ""
        return f"{path}: column {column!r} must be {want}, got {value!r}{where}"
    json_type = _JSON_TYPE.search(first)
    if json_type:
        column, before, after, row = json_type.groups()
        return (
            f"{path}: column {column!r} must hold one type, got {before} values and then "
            f"a {after} value (line {int(row) + 1})"
        )
    return f"{path}: not a valid {kind} file ({first[:200]})"


def _csv_header(path: Path) -> list[str]:
    import csv

    with path.open(newline="") as handle:
        return next(csv.reader(handle), [])


def _check_names(path: Path, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UserError(f"{path}: duplicate column name {name!r}; allowed: unique names")
        if not name.strip():
            raise UserError(f"{path}: a column has an empty name; allowed: non-empty names")
        seen.add(name)


def _normalize(path: Path, table: Any) -> Any:
    """Text -> dictionary (pandas categorical), decimals -> float; refuse nested types."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            column = pc.dictionary_encode(column)
        elif pa.types.is_dictionary(kind) and not pa.types.is_string(kind.value_type):
            column = column.cast(kind.value_type)
        elif pa.types.is_decimal(kind):
            column = column.cast(pa.float64())
        elif (
            not (
                pa.types.is_integer(kind)
                or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind)
                or pa.types.is_temporal(kind)
                or pa.types.is_null(kind)
                or pa.types.is_dictionary(kind)
            )
            or pa.types.is_time(kind)
            or pa.types.is_duration(kind)
        ):
            if pa.types.is_binary(kind) and FORMATS.get(Path(path).suffix.lower()) == "CSV":
                raise UserError(
                    f"{path}: column {name!r} is not UTF-8 text (another encoding, e.g. "
                    f"Latin-1 or Windows-1252); allowed: UTF-8 CSV files; convert it, e.g. "
                    f"`iconv -f latin1 -t utf-8 {path} > utf8.csv`"
                )
            raise UserError(
                f"{path}: column {name!r} has type {kind}; allowed: text, integer, float, "
                "bool, date"
            )
        columns.append(column)
    return pa.table(columns, names=table.column_names)


# --- column kinds -----------------------------------------------------------------------


def kind_of(series: pd.Series) -> str:
    """The kind of a column as loaded: numeric, bool, date or category."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "date"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_object_dtype(dtype) and _all_bools(series):
        return "bool"
    return "category"


def _all_bools(series: pd.Series) -> bool:
    values = series.dropna()
    return len(values) > 0 and all(
        isinstance(value, bool | np.bool_) for value in values.head(1000)
    )


def coerce(series: pd.Series, kind: str, where: str) -> pd.Series:
    """`series` as `kind`; a value that does not fit is a UserError naming it and its row."""
    if kind == "numeric":
        return _to_numeric(series, where)
    if kind == "bool":
        return _to_bool(series, where)
    if kind == "date":
        return _to_date(series, where)
    return to_category(series)


def _to_numeric(series: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(
        series.dtype
    ):
        _refuse(series, series.notna(), "numeric", where)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series
    values = _text(series)
    numbers = pd.to_numeric(values, errors="coerce")
    _refuse(series, numbers.isna() & values.notna(), "numeric", where)
    return numbers.astype(np.float64)


def _to_bool(series: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(pd.BooleanDtype())
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_datetime64_any_dtype(
        series.dtype
    ):
        _refuse(series, series.notna() & ~series.isin([0, 1]), "bool", where)
        return series.map({1: True, 0: False}, na_action="ignore").astype("boolean")
    lowered = _text(series).str.strip().str.lower()
    mapped = lowered.map(
        {**dict.fromkeys(TRUE_TEXT, True), **dict.fromkeys(FALSE_TEXT, False)}
    ).astype("boolean")
    _refuse(series, mapped.isna() & lowered.notna(), "bool", where)
    return mapped


def _to_date(series: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        _refuse(series, series.notna(), "date", where)
    values = _text(series)
    dates = pd.to_datetime(values, errors="coerce", format="ISO8601")
    _refuse(series, dates.isna() & values.notna(), "date", where)
    return dates


def to_category(series: pd.Series) -> pd.Series:
    """Text as a categorical of strings (numbers become their text)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = series.cat.categories
        if categories.dtype == object or pd.api.types.is_string_dtype(categories.dtype):
            return series
        return series.cat.rename_categories([str(value) for value in categories])
    if isinstance(series.dtype, pd.StringDtype):
        return series  # text already (identifier-like columns are kept this way)
    values = series
    if pd.api.types.is_float_dtype(series.dtype):
        present = series.dropna()
        if np.all(np.mod(present.to_numpy(), 1) == 0):  # 7.0 was an integer with gaps
            values = series.astype("Int64")
    text = values.astype(object).where(series.notna(), None)
    return pd.Series(
        pd.Categorical([None if value is None else str(value) for value in text]),
        index=series.index,
        name=series.name,
    )


def _text(series: pd.Series) -> pd.Series:
    """Non-missing values as strings (object dtype), missing as NaN."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.rename_categories([str(value) for value in series.cat.categories]).astype(
            object
        )
    return series.astype(object).where(series.notna(), np.nan).map(str, na_action="ignore")


def _refuse(series: pd.Series, bad: pd.Series, kind: str, where: str) -> None:
    if not bool(bad.any()):
        return
    position = int(np.flatnonzero(bad.to_numpy(dtype=bool))[0])
    value = series.iloc[position]
    raise UserError(
        f"{where} must be {KIND_WORDS[kind]}, got {_plain(value)!r} (row {position + 1})"
    )


def numeric_text_value(series: pd.Series) -> tuple[Any, int] | None:
    """For a text column that is mostly numbers: its first non-numeric value and row."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        distinct = pd.Series(series.cat.categories.astype(str))
    elif series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        distinct = pd.Series(series.dropna().unique()).astype(str)
    else:
        return None
    if distinct.empty:
        return None
    # Identifier-like columns have as many distinct values as rows: decide on a sample.
    if not pd.to_numeric(distinct.head(SAMPLE), errors="coerce").notna().mean() >= (
        NUMERIC_TEXT_SHARE
    ):
        return None
    numeric = pd.to_numeric(distinct, errors="coerce").notna()
    if numeric.all() or numeric.mean() < NUMERIC_TEXT_SHARE:
        return None
    bad_values = set(distinct[~numeric])
    bad = series.astype(object).isin(bad_values).to_numpy()
    position = int(np.flatnonzero(bad)[0])
    return _plain(series.iloc[position]), position + 1


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
