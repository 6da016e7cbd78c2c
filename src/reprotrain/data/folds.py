"""Cross-validation folds over the development rows (train then dev), cut by `split`.

On small data one dev split says little: a dev set of a few dozen rows saturates or moves
by points with one row. `split.cv_folds` keeps the test split sealed as always and cuts
the development rows (train.parquet's, then dev.parquet's) into k folds, `cv_repeats`
times, stratified on the class label like the split itself. `train` and `tune` score on
the folds and refit the final models on all development rows.

`auto` turns it on when the dev split would hold fewer than CV_DEV_ROWS rows: below that a
dev score's 95% interval is wider than about ±5 points of accuracy, too wide to choose by.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from reprotrain.config import SplitParams
from reprotrain.config.errors import UserError
from reprotrain.data import io, tables

CV_DEV_ROWS = 300  # auto: cross-validation when the dev split has fewer rows
AUTO_FOLDS = 5
COLUMN = "fold_repeat_{}"  # one int8 column per repeat in data/split/folds.parquet


def resolve(params: SplitParams, method: str, n_dev: int) -> tuple[int, str]:
    """How many folds (0: none, the dev split alone) and why."""
    if params.cv_folds == 0:
        return 0, "split.cv_folds is 0: the dev split alone"
    if method in ("group", "time"):
        if params.cv_folds == "auto":
            return 0, f"a {method} split keeps its dev split (folds would mix its {method}s)"
        raise UserError(
            f"params.yaml: split.cv_folds: cross-validation needs a random or stratified split; "
            f"allowed with split.{method}_column set: 0 or auto, got {params.cv_folds}"
        )
    if params.cv_folds != "auto":
        return int(params.cv_folds), f"split.cv_folds is {params.cv_folds}"
    if n_dev >= CV_DEV_ROWS:
        return 0, f"the dev split has {n_dev} rows (>= {CV_DEV_ROWS}): the dev split alone"
    return AUTO_FOLDS, f"the dev split would have {n_dev} rows (< {CV_DEV_ROWS})"


def fold_codes(
    n_rows: int, labels: np.ndarray | None, folds: int, repeats: int, seed: int
) -> np.ndarray:
    """(rows, repeats) fold numbers 0..folds-1, each repeat cut anew; stratified on
    `labels` when given (scikit-learn's RepeatedStratifiedKFold / RepeatedKFold)."""
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    if n_rows < folds:
        raise UserError(
            f"params.yaml: split.cv_folds: {folds} folds of {n_rows} train+dev rows; allowed: "
            f"at most {n_rows} folds (or 0: the dev split alone)"
        )
    codes = np.empty((n_rows, repeats), dtype=np.int8)
    if labels is not None and np.unique(labels, return_counts=True)[1].max() < folds:
        labels = None  # no class fills every fold: stratification has nothing to spread
    kind = RepeatedStratifiedKFold if labels is not None else RepeatedKFold
    cutter = kind(n_splits=folds, n_repeats=repeats, random_state=seed)
    target = labels if labels is not None else np.zeros(n_rows)
    with warnings.catch_warnings():  # a class rarer than the folds misses some: expected
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        for number, (_, held_out) in enumerate(cutter.split(np.zeros(n_rows), target)):
            codes[held_out, number // folds] = number % folds
    return codes


def write(path: Path, codes: np.ndarray | None) -> None:
    """The fold numbers, a column per repeat; no columns when there is no cross-validation."""
    columns = {}
    if codes is not None:
        columns = {COLUMN.format(r + 1): codes[:, r] for r in range(codes.shape[1])}
    io.write_parquet(path, pd.DataFrame(columns))


def read(path: Path) -> np.ndarray | None:
    """(development rows, repeats) fold numbers, or None without cross-validation."""
    frame = tables.read_parquet(path)
    if frame.shape[1] == 0:
        return None
    return frame.to_numpy(dtype=np.int8)
