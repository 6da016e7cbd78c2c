"""Predict with a saved model:
`python -m reprotrain.cli.predict --model DIR --input FILE --output FILE`.

The input (CSV, Parquet or JSON Lines) is checked against the schema saved in the model
directory: missing and unexpected columns and values of the wrong type are errors; text
values never seen in training are reported (and refused under `--strict`). The output
(CSV or Parquet, by suffix) holds one row per input row, in order: `prediction` and, for
classification, `proba_<class>` per class. It is written atomically.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import NoReturn

import pandas as pd

from reprotrain.config.errors import UserError, run_stage
from reprotrain.data import io, tables
from reprotrain.data.schema import Schema

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".parquet")
USAGE = "python -m reprotrain.cli.predict --model DIR --input FILE --output FILE [--strict]"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UserError(f"reprotrain.cli.predict: {message}; usage: {USAGE}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="python -m reprotrain.cli.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a model directory")
    parser.add_argument("--input", type=Path, required=True, help=".csv, .parquet or .jsonl")
    parser.add_argument("--output", type=Path, required=True, help=".csv or .parquet")
    parser.add_argument(
        "--strict", action="store_true", help="refuse text values never seen in training"
    )
    args = parser.parse_args(argv)
    if args.output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(
            f"--output: unsupported file type {args.output.suffix!r} for {args.output}; "
            f"allowed: {', '.join(OUTPUT_SUFFIXES)}"
        )
    tables.check_suffix(args.input, "--input")
    return args


def check_columns(frame: pd.DataFrame, schema: Schema, where: str) -> None:
    """Unexpected columns are an error; the target column may be present (it is ignored)."""
    known = {*schema.feature_names, schema.target}
    extra = [str(column) for column in frame.columns if column not in known]
    if extra:
        names = schema.feature_names
        raise UserError(
            f"{where}: unexpected column(s) {', '.join(map(repr, extra[:5]))}; allowed: the "
            f"model's feature columns {', '.join(names[:10])}"
            + (", ..." if len(names) > 10 else "")
            + f" (and the target {schema.target!r}, ignored)"
        )


def check_unseen(unseen: dict[str, list], where: str, strict: bool) -> None:
    for column, values in unseen.items():
        shown = ", ".join(map(repr, values[:5])) + (", ..." if len(values) > 5 else "")
        if strict:
            raise UserError(
                f"{where}: column {column!r} has values never seen in training: {shown}; "
                "allowed under --strict: only training values"
            )
        log.warning(
            "%s: column %r has %d values never seen in training (%s): encoded as unknown",
            where,
            column,
            len(values),
            shown,
        )


def write(path: Path, frame: pd.DataFrame) -> None:
    if path.suffix.lower() == ".csv":
        io.write_csv(path, frame)
    else:
        io.write_parquet(path, frame)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from reprotrain.models.model import load_model, predictions_frame

    model = load_model(args.model)
    schema = model.preprocessor.schema
    if schema is None:
        raise UserError(
            f"{args.model}: no schema.json beside the model; allowed: a model directory "
            "written by `train` or `tune` (rerun them to add it)"
        )
    frame = tables.read_table(args.input)
    where = str(args.input)
    check_columns(frame, schema, where)
    converted, unseen = model.preprocessor.check(frame, where)
    check_unseen(unseen, where, args.strict)
    result = predictions_frame(model, schema, converted, where)
    write(args.output, result)
    print(f"wrote {len(result)} predictions to {args.output}")


if __name__ == "__main__":
    run_stage(main)
