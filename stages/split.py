"""Stage `split`: seeded train/dev/test split (stratified, by group or by time) without
identical feature rows across splits, and the leakage audit of the result."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from reprotrain import config
from reprotrain.config import FeaturesParams, SplitParams
from reprotrain.config.errors import UserError, run_stage
from reprotrain.config.paths import (
    FOLDS,
    PREPARED_DATA,
    SCHEMA,
    SPLIT_FILES,
    SPLIT_METRICS,
    STAGE_OUTPUTS,
)
from reprotrain.data import folds, io, leakage, outputs, splitting
from reprotrain.data.schema import Schema
from reprotrain.data.tables import read_frame

log = logging.getLogger(__name__)


def assign(
    frame: pd.DataFrame, schema: Schema, params: SplitParams, seed: int
) -> tuple[np.ndarray, str]:
    """Split codes (0 train, 1 dev, 2 test) for every row, and the method used."""
    fractions = {"train": params.train, "dev": params.dev, "test": params.test}
    for key in ("group_column", "time_column"):
        column = getattr(params, key)
        if column is not None and column not in frame.columns:
            raise UserError(
                f"params.yaml: split.{key}: unknown column {column!r}; allowed: columns of "
                f"{PREPARED_DATA}: {', '.join(map(str, frame.columns[:10]))}"
            )
    if params.group_column is not None:
        groups = frame[params.group_column]
        return splitting.group_codes(groups, fractions, seed), "group"
    if params.time_column is not None:
        return splitting.time_codes(frame[params.time_column], fractions), "time"
    stratify = params.stratify and schema.task == "classification"
    labels = frame[schema.target].to_numpy() if stratify else None
    method = "stratified" if stratify else "random"
    return splitting.split_codes(len(frame), labels, fractions, seed), method


def resolve(
    codes: np.ndarray, hashes: np.ndarray, method: str, fail: bool
) -> tuple[np.ndarray, int, int]:
    """Codes without cross-split duplicates; how many rows had one, how many were dropped."""
    found = splitting.count_cross_split_duplicates(codes, hashes)
    if found and fail:
        raise UserError(
            f"params.yaml: split.fail_on_duplicates: {found} rows of {PREPARED_DATA} have an "
            "identical feature row in another split; allowed: none while it is true (set it "
            "to false to resolve them)"
        )
    if method in ("group", "time"):
        codes, dropped = splitting.drop_later_duplicates(codes, hashes)
    else:
        (codes, _), dropped = splitting.resolve_duplicates(codes, hashes), 0
    splitting.check_filled_after_duplicates(codes, found)
    return codes, found, dropped


def audit(
    frame: pd.DataFrame,
    schema: Schema,
    codes: np.ndarray,
    params: SplitParams,
    features: FeaturesParams,
    seed: int,
) -> dict:
    """The leakage audit of the final split; an error naming every finding whose
    `split.fail_on_*` switch is on."""
    skipped = {params.group_column, params.time_column, *features.exclude}
    columns = [name for name in schema.feature_names if name not in skipped]
    result = leakage.audit(frame, schema, columns, codes, seed)
    failing = {
        switch: text for switch, text in leakage.findings(result).items() if getattr(params, switch)
    }
    if failing:
        switches = ", ".join(f"split.{switch}" for switch in failing)
        raise UserError(
            f"params.yaml: {switches}: leakage in {PREPARED_DATA}: {'; '.join(failing.values())}"
            "; allowed: none while true (drop or exclude the columns with features.exclude, "
            "remove the copies, or set the switch to false)"
        )
    return result


def cross_validation(
    frame: pd.DataFrame,
    schema: Schema,
    rows: dict[str, np.ndarray],
    params: SplitParams,
    method: str,
    seed: int,
) -> tuple[np.ndarray | None, dict]:
    """Fold numbers of the development rows (train's, then dev's), or None; and how
    it was decided, for split.json."""
    n_folds, reason = folds.resolve(params, method, len(rows["dev"]))
    if n_folds == 0:
        return None, {"folds": 0, "repeats": 0, "reason": reason}
    development = np.concatenate([rows["train"], rows["dev"]])
    labels = frame[schema.target].to_numpy()[development] if method == "stratified" else None
    codes = folds.fold_codes(len(development), labels, n_folds, params.cv_repeats, seed)
    summary = {"folds": n_folds, "repeats": params.cv_repeats, "rows": len(development)}
    return codes, summary | {"reason": reason}


def main() -> None:
    outputs.recover()  # a killed run's outputs, completed before anything reads them
    base, params, features = config.load("base", "split", "features")
    schema = Schema.read(SCHEMA)
    frame = read_frame(PREPARED_DATA)
    target = schema.target

    codes, method = assign(frame, schema, params, base.seed)
    # The group/time column says where a row goes, not what it holds: rows equal in
    # everything else are the same example.
    placement = {params.group_column, params.time_column}
    hashed = [name for name in schema.feature_names if name not in placement]
    hashes = splitting.row_hashes(frame[hashed])
    codes, found, dropped = resolve(codes, hashes, method, params.fail_on_duplicates)
    leaks = audit(frame, schema, codes, params, features, base.seed)
    kept = codes >= 0
    remaining = splitting.count_cross_split_duplicates(codes[kept], hashes[kept])

    rows = {name: np.flatnonzero(codes == code) for code, name in enumerate(splitting.SPLITS)}
    labels = {name: frame.iloc[positions][[target]] for name, positions in rows.items()}
    summary = splitting.split_summary(
        labels, target, schema.task, found, remaining, method, dropped
    )
    if method == "time":
        summary["time_ranges"] = splitting.time_ranges(frame[params.time_column], codes)
    if method == "group":
        summary["groups"] = splitting.group_counts(frame[params.group_column], codes)
    summary["leakage"] = leaks
    fold_codes, summary["cross_validation"] = cross_validation(
        frame, schema, rows, params, method, base.seed
    )
    with outputs.replaced_together("split", STAGE_OUTPUTS["split"]) as staged:
        for name, positions in rows.items():
            io.write_parquet(staged.path(SPLIT_FILES[name]), frame, positions)
        folds.write(staged.path(FOLDS), fold_codes)
        io.write_json(staged.path(SPLIT_METRICS), summary)
    log.info(
        "%s split, sizes %s; %d rows had an identical feature row in another split (%s)",
        method,
        summary["sizes"],
        found,
        f"{dropped} dropped" if method in ("group", "time") else "moved to the earliest split",
    )
    cv = summary["cross_validation"]
    folds_text = f"{cv['folds']} folds x {cv['repeats']} repeat(s)" if cv["folds"] else "off"
    log.info("cross-validation: %s (%s)", folds_text, cv["reason"])
    for text in leakage.findings(leaks).values():
        log.warning("leakage audit: %s", text)


if __name__ == "__main__":
    run_stage(main)
