"""Stage `split`: seeded train/dev/test split, stratified, with no identical rows across splits."""

from __future__ import annotations

import logging

import pandas as pd

from stages import config, io, splitting
from stages.errors import run_stage
from stages.paths import PREPARED_DATA, SCHEMA, SPLIT_FILES, SPLIT_METRICS

log = logging.getLogger(__name__)


def main() -> None:
    base, params = config.load("base", "split")
    schema = io.read_json(SCHEMA)
    frame = pd.read_parquet(PREPARED_DATA)
    target = schema["target"]

    stratify = params.stratify and schema["task"] == "classification"
    labels = frame[target].to_numpy() if stratify else None
    fractions = {"train": params.train, "dev": params.dev, "test": params.test}
    codes = splitting.split_codes(len(frame), labels, fractions, base.seed)
    hashes = splitting.row_hashes(frame.drop(columns=[target]))
    codes, found = splitting.resolve_duplicates(codes, hashes)
    remaining = splitting.count_cross_split_duplicates(codes, hashes)

    parts = {name: frame[codes == code] for code, name in enumerate(splitting.SPLITS)}
    for name, part in parts.items():
        io.write_parquet(SPLIT_FILES[name], part)
    summary = splitting.split_summary(parts, target, schema["task"], found, remaining)
    io.write_json(SPLIT_METRICS, summary)
    log.info(
        "split sizes %s; %d rows with duplicates across splits moved to the earliest split",
        summary["sizes"],
        found,
    )


if __name__ == "__main__":
    run_stage(main)
