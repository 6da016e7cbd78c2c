"""The leakage audit of the split: what could let a model score on dev or test for the
wrong reason.

Three checks, each counted in metrics/split.json and each a failure under its own
`split.fail_on_*` switch:

- near-duplicates across splits: tabular rows equal once the values are normalised as the
  models see them (numbers as float32, text stripped and case-folded), and images whose
  8x8 grayscale thumbnails have the same average hash;
- target leakage: a single feature that on its own predicts the target on dev almost
  perfectly (a one-feature tree fit on train), named with its dev score next to a model
  of all the features;
- identifier-like columns (integers or text with a distinct value on almost every row)
  whose rank order follows the target or the row order of the file.

Only train and dev rows are read: the test rows are hashed for the near-duplicate counts,
never scored or correlated with their target.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reprotrain.data.schema import Schema

SPLITS = ("train", "dev", "test")
PAIRS = (("train", "dev"), ("train", "test"), ("dev", "test"))
THUMBNAIL = 8  # side of the grayscale thumbnail hashed for images (64-bit average hash)
EXAMPLES = 5  # near-duplicate pairs listed in split.json
# A feature is a suspected target leak when its dev score alone reaches NEAR_PERFECT, or
# comes within MARGIN of an all-features model that itself reaches NEAR_PERFECT. (A looser
# rule flags honest strong features: alone, iris's petal width scores 0.93 on dev, as
# much as all four features; breast_cancer's mean concave points 0.956 against 0.965.)
NEAR_PERFECT = 0.98
MARGIN = 0.01
TOP_FEATURES = 5  # best single features listed in split.json
MAX_ROWS = 20_000  # train and dev rows the audit's models see at most (seeded sample)
# Identifier-like: integer or text with distinct values on this share of its rows or more.
ID_DISTINCT = 0.95
ID_TARGET_CORRELATION = 0.3  # |Spearman| with the target (class index order), p < 0.01
ID_ORDER_CORRELATION = 0.9  # |Spearman| with the row position in the prepared file
SIGNIFICANCE = 0.01


# --- near-duplicates ---------------------------------------------------------------------


def normalised_rows(features: pd.DataFrame) -> np.ndarray:
    """A hash per row of its values as the models see them: numbers in float32, text
    stripped and case-folded, so `1.0000001` and `1.0` or `' Paris'` and `'paris'` match."""
    columns = {}
    for name in features.columns:
        series = features[name]
        if pd.api.types.is_numeric_dtype(series.dtype):  # bools included
            columns[name] = series.astype("float32")
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            columns[name] = series
        else:
            text = series.astype("string").str.strip().str.casefold()
            columns[name] = pd.Series(pd.factorize(text)[0], index=series.index)
    frame = pd.DataFrame(columns, index=features.index, copy=False)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def image_hashes(pixels: np.ndarray, shape: list[int]) -> np.ndarray:
    """The 64-bit average hash of each image: its 8x8 grayscale thumbnail, one bit per
    pixel brighter than the thumbnail's mean. Resized, re-encoded or slightly noisy copies
    of an image keep its hash."""
    from PIL import Image

    channels, height, width = shape
    images = pixels.reshape(-1, channels, height, width).astype(np.float32)
    gray = images.mean(axis=1)
    weights = 1 << np.arange(THUMBNAIL * THUMBNAIL, dtype=np.uint64)
    hashes = np.empty(len(gray), dtype=np.uint64)
    for row, image in enumerate(gray):
        thumb = Image.fromarray(image, mode="F").resize(
            (THUMBNAIL, THUMBNAIL), Image.Resampling.BOX
        )
        values = np.asarray(thumb, dtype=np.float32).reshape(-1)
        bits = (values > values.mean()).astype(np.uint64)
        hashes[row] = np.bitwise_or.reduce(bits * weights)
    return hashes


def cross_split_matches(codes: np.ndarray, keys: np.ndarray) -> dict[str, Any]:
    """Rows whose key (a normalised row or image hash) is shared with another split: the
    count, per pair of splits the rows of the later split with a match in the earlier one,
    and a few example pairs (row numbers of the prepared file)."""
    kept = codes >= 0
    frame = pd.DataFrame({"key": keys[kept], "code": codes[kept], "row": np.flatnonzero(kept)})
    spans = frame.groupby("key")["code"].transform("nunique") > 1
    pairs: dict[str, int] = {}
    for first, second in PAIRS:
        earlier = set(frame.loc[frame["code"] == SPLITS.index(first), "key"])
        later = frame[frame["code"] == SPLITS.index(second)]
        pairs[f"{first}_{second}"] = int(later["key"].isin(earlier).sum())
    examples = []
    for _, group in frame[spans].groupby("key", sort=False):
        firsts = group.drop_duplicates("code").sort_values("code")
        rows = firsts["row"].tolist()
        names = [SPLITS[code] for code in firsts["code"]]
        examples.append({name: int(row) for name, row in zip(names, rows, strict=True)})
        if len(examples) == EXAMPLES:
            break
    return {"rows": int(spans.sum()), "pairs": pairs, "examples": examples}


def near_duplicates(
    frame: pd.DataFrame, schema: Schema, columns: list[str], codes: np.ndarray
) -> dict[str, Any]:
    if schema.image_shape is not None:
        pixels = frame[[name for name in schema.feature_names]].to_numpy()
        keys, method = image_hashes(pixels, schema.image_shape), "image average hash (8x8)"
    else:
        keys, method = normalised_rows(frame[columns]), "rows equal after normalisation"
    return {"method": method, **cross_split_matches(codes, keys)}


# --- target leakage ----------------------------------------------------------------------


def _encoded(series: pd.Series) -> np.ndarray:
    """One column as floats for a tree (NaN where missing; text by its sorted codes)."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("float64").to_numpy(na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.astype("int64").astype("float64").where(series.notna()).to_numpy()
    codes = pd.factorize(series.astype("string"), sort=True)[0].astype("float64")
    codes[codes < 0] = np.nan
    return codes


def _sample(rows: np.ndarray, seed: int) -> np.ndarray:
    if len(rows) <= MAX_ROWS:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, MAX_ROWS, replace=False))


def single_feature_scores(
    frame: pd.DataFrame, schema: Schema, columns: list[str], codes: np.ndarray, seed: int
) -> dict[str, Any]:
    """Each feature alone (a depth-limited tree fit on train) and all of them (a random
    forest) scored on dev: accuracy (classification) or R² (regression). The features whose
    score alone is near-perfect, or as good as all of them together, are the suspects."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    classify = schema.is_classification
    train = _sample(np.flatnonzero(codes == 0), seed)
    dev = _sample(np.flatnonzero(codes == 1), seed)
    target = frame[schema.target]
    y = target.astype(str).to_numpy() if classify else target.to_numpy(dtype=np.float64)
    matrix = np.column_stack([_encoded(frame[name]) for name in columns])
    score = accuracy_score if classify else r2_score
    tree = DecisionTreeClassifier if classify else DecisionTreeRegressor
    forest = RandomForestClassifier if classify else RandomForestRegressor
    full = forest(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)
    full_score = float(score(y[dev], full.fit(matrix[train], y[train]).predict(matrix[dev])))
    scores = {}
    for index, name in enumerate(columns):
        single = tree(max_depth=8, min_samples_leaf=5, random_state=seed)
        column = matrix[:, [index]]
        single.fit(column[train], y[train])
        scores[name] = float(score(y[dev], single.predict(column[dev])))
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    suspects = [
        {"column": name, "dev_score": round(value, 4)}
        for name, value in ranked
        if value >= NEAR_PERFECT or (full_score >= NEAR_PERFECT and value >= full_score - MARGIN)
    ]
    return {
        "metric": "accuracy" if classify else "r2",
        "all_features_dev_score": round(full_score, 4),
        "top_single_features": [
            {"column": name, "dev_score": round(value, 4)} for name, value in ranked[:TOP_FEATURES]
        ],
        "suspects": suspects,
    }


# --- identifier-like columns -------------------------------------------------------------


def identifier_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Integer or text columns with a distinct value on almost every row."""
    found = []
    for name in columns:
        series = frame[name]
        dtype = series.dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
            continue
        if pd.api.types.is_datetime64_any_dtype(dtype):
            continue
        values = series.dropna()
        if len(values) >= 20 and values.nunique() >= ID_DISTINCT * len(values):
            found.append(name)
    return found


def identifiers(
    frame: pd.DataFrame, schema: Schema, columns: list[str], codes: np.ndarray
) -> dict[str, Any]:
    """Identifier-like columns and their rank correlation with the target (class index
    order) and with the row order, on train and dev rows. The ones that follow either
    are the suspects: a model can learn the target from the id, or the id tells the order
    the file was written in (sorted by the target, by time)."""
    from scipy.stats import spearmanr

    rows = np.flatnonzero((codes == 0) | (codes == 1))
    target = frame[schema.target].iloc[rows]
    if schema.is_classification:
        order = pd.Categorical(target.astype(object), categories=schema.labels).codes
    else:
        order = target.to_numpy(dtype=np.float64)
    checked, suspects = [], []
    for name in identifier_columns(frame, columns):
        values = pd.Series(_encoded(frame[name].iloc[rows]))
        present = values.notna().to_numpy()
        with_target = spearmanr(values[present], order[present])
        with_order = spearmanr(values[present], rows[present])
        entry = {
            "column": name,
            "target_rank_correlation": round(float(with_target.statistic), 4),
            "row_order_rank_correlation": round(float(with_order.statistic), 4),
        }
        checked.append(name)
        follows_target = (
            abs(with_target.statistic) >= ID_TARGET_CORRELATION
            and with_target.pvalue < SIGNIFICANCE
        )
        if follows_target or abs(with_order.statistic) >= ID_ORDER_CORRELATION:
            suspects.append(entry)
    return {"checked": checked, "suspects": suspects}


# --- the audit ---------------------------------------------------------------------------


def audit(
    frame: pd.DataFrame, schema: Schema, columns: list[str], codes: np.ndarray, seed: int
) -> dict[str, Any]:
    """The three checks on the final split codes (-1: dropped row). `columns`: the
    features to audit (the schema's, less placement and excluded columns). The single
    feature check runs on tabular data only (an image's pixels are not columns a user
    chose)."""
    result: dict[str, Any] = {"near_duplicates": near_duplicates(frame, schema, columns, codes)}
    if schema.image_shape is None and columns:
        result["target_leak"] = single_feature_scores(frame, schema, columns, codes, seed)
    result["identifiers"] = identifiers(frame, schema, columns, codes)
    return result


def findings(result: dict[str, Any]) -> dict[str, str]:
    """A short text per check that found something, keyed by its switch's name."""
    found = {}
    duplicates = result["near_duplicates"]
    if duplicates["rows"]:
        found["fail_on_near_duplicates"] = (
            f"{duplicates['rows']} rows have a near-duplicate in another split "
            f"({duplicates['method']}; {_pairs(duplicates['pairs'])})"
        )
    leak = result.get("target_leak")
    if leak and leak["suspects"]:
        named = ", ".join(
            f"{item['column']!r} (dev {leak['metric']} {item['dev_score']:.4f} alone)"
            for item in leak["suspects"]
        )
        found["fail_on_target_leak"] = (
            f"target leak: {named}; all features {leak['all_features_dev_score']:.4f}"
        )
    ids = result["identifiers"]["suspects"]
    if ids:
        named = ", ".join(
            f"{item['column']!r} (rank correlation with the target "
            f"{item['target_rank_correlation']:.2f}, with the row order "
            f"{item['row_order_rank_correlation']:.2f})"
            for item in ids
        )
        found["fail_on_identifiers"] = f"identifier-like columns: {named}"
    return found


def _pairs(pairs: dict[str, int]) -> str:
    return ", ".join(f"{name.replace('_', '/')} {count}" for name, count in pairs.items() if count)
