"""The dev error analysis: a planted weak slice is flagged with its interval, mistakes and
confusion pairs are the real ones, and train writes the analysis whose thumbnail grid shows
the mistaken dev images."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression, Ridge

from reprotrain.config import paths
from reprotrain.data import datasets, folds, io
from reprotrain.data.tables import read_frame
from reprotrain.metrics import dev_errors
from reprotrain.reporting import report
from reprotrain.reporting.error_plots import MISTAKES_PNG, write_mistakes_grid
from stages import train


def sites(n: int = 900, seed: int = 0) -> pd.DataFrame:
    """Two features that separate the classes, and a `site` whose value `c` has its labels
    shuffled (a third of the rows: the planted weak slice)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    x = label[:, None] * 3.0 + rng.normal(size=(n, 2))
    site = np.array(["a", "b", "c"])[np.arange(n) % 3]
    shuffled = site == "c"
    label[shuffled] = rng.permutation(label[shuffled])
    frame = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "site": pd.Categorical(site)})
    frame["label"] = label
    return frame


def fitted_on(frame: pd.DataFrame, dev: pd.DataFrame, schema) -> tuple:
    model = LogisticRegression().fit(frame[["x0", "x1"]], datasets.encode_target(frame, schema))
    features = dev[["x0", "x1"]]
    return (
        datasets.encode_target(dev, schema),
        model.predict(features),
        model.predict_proba(features),
    )


def test_planted_weak_slice_is_flagged_with_its_interval() -> None:
    train_rows, dev = sites(900, 0), sites(600, 1)
    schema = datasets.build_schema(train_rows, "label", "classification", "test", None)
    y_true, y_pred, proba = fitted_on(train_rows, dev, schema)
    analysis = dev_errors.analyse(schema, dev, y_true, y_pred, proba, seed=0)
    slices = analysis["slices.csv"].set_index("slice")
    weak = slices.loc["site = c"]
    assert bool(weak["below"])
    assert weak["ci_high"] < analysis["summary.json"]["overall"]
    assert 0.3 < weak["accuracy"] < 0.7 and weak["ci_low"] < weak["accuracy"] < weak["ci_high"]
    assert weak["rows"] == 200
    assert not slices.loc["site = a", "below"] and not slices.loc["site = b", "below"]
    assert analysis["slices.csv"]["slice"].iloc[0] == "site = c"  # worst first
    assert {"label = 0", "label = 1"} <= set(slices.index)
    assert sum(name.startswith("x0 in (") for name in slices.index) == dev_errors.N_BINS
    lines = "\n".join(report.where_to_look(analysis))
    assert (
        f"`site = c` {weak['accuracy']:.4f} [{weak['ci_low']:.4f}, {weak['ci_high']:.4f}]" in lines
    )


def test_mistakes_and_confusion_pairs_are_the_real_ones() -> None:
    train_rows, dev = sites(900, 0), sites(600, 1)
    schema = datasets.build_schema(train_rows, "label", "classification", "test", None)
    y_true, y_pred, proba = fitted_on(train_rows, dev, schema)
    analysis = dev_errors.analyse(schema, dev, y_true, y_pred, proba, seed=0)
    worst = analysis["mistakes.csv"]
    assert len(worst) == dev_errors.N_MISTAKES
    rows = worst["dev_row"].to_numpy()
    assert (y_pred[rows] != y_true[rows]).all()
    assert worst["p_predicted"].is_monotonic_decreasing
    wrong = y_pred != y_true
    assert worst["p_predicted"].iloc[0] == round(proba[wrong, y_pred[wrong]].max(), 4)
    assert (worst[["x0", "x1"]].to_numpy() == dev.iloc[rows][["x0", "x1"]].to_numpy()).all()
    pairs = analysis["confusion_pairs.csv"]
    assert pairs["rows"].sum() == wrong.sum()
    assert pairs["rows"].is_monotonic_decreasing
    assert analysis["summary.json"]["n_mistakes"] == int(wrong.sum())


def test_regression_largest_residuals_and_mae_slices(regression_frame: pd.DataFrame) -> None:
    schema = datasets.build_schema(regression_frame, "y", "regression", "test", None)
    features = regression_frame[["x0", "x1", "x2"]]
    y_true = regression_frame["y"].to_numpy()
    y_pred = Ridge(alpha=10.0).fit(features, y_true).predict(features)
    analysis = dev_errors.analyse(schema, regression_frame, y_true, y_pred, None, seed=0)
    worst = analysis["mistakes.csv"]
    assert worst["residual"].abs().is_monotonic_decreasing
    assert worst["residual"].abs().iloc[0] == np.abs(y_pred - y_true).max()
    assert analysis["summary.json"]["metric"] == "mae"
    assert analysis["confusion_pairs.csv"].empty
    assert len(analysis["slices.csv"]) == 3 * dev_errors.N_BINS


@pytest.mark.slow  # a real train stage run (with its MLflow logging): about 25 s
def test_train_writes_the_analysis_and_the_grid_shows_the_mistaken_images(workdir) -> None:
    """The train stage on 8x8 digits (a logistic regression): metrics/dev_errors/model holds
    the real dev mistakes, and the grid drawn from it shows those images."""
    root = workdir(
        {
            "train": {"model": "logistic_regression", "seeds": [0], "device": "cpu"},
            "learning_curve": {"fractions": []},
        }
    )
    frame, target, shape = datasets.load_source("sklearn:digits", None)
    frame = frame.iloc[:600]
    schema = datasets.build_schema(frame, target, "classification", "sklearn:digits", shape)
    schema.write(paths.SCHEMA)
    io.write_parquet(paths.SPLIT_FILES["train"], frame.iloc[:150])  # few rows: mistakes
    io.write_parquet(paths.SPLIT_FILES["dev"], frame.iloc[150:])
    folds.write(paths.FOLDS, None)  # the dev split alone
    train.main()
    analysis = dev_errors.read(paths.DEV_ERRORS["model"])
    worst = analysis["mistakes.csv"]
    assert len(worst) == dev_errors.N_MISTAKES
    assert (worst["true"] != worst["predicted"]).all()
    dev = read_frame(paths.SPLIT_FILES["dev"])
    pixels = worst.filter(like="pixel_").to_numpy()
    assert (pixels == dev.iloc[worst["dev_row"]][schema.feature_names].to_numpy()).all()
    assert (dev.iloc[worst["dev_row"]][target].astype(str).to_numpy() == worst["true"]).all()
    assert analysis["summary.json"]["image_shape"] == [1, 8, 8]
    assert analysis["slices.csv"]["slice"].str.startswith("target = ").all()  # classes only

    grid = write_mistakes_grid(root / "metrics", analysis, "trained")
    if os.environ.get("KEEP_GRID"):  # to look at it: KEEP_GRID=/tmp/grid.png pytest ...
        shutil.copy(root / "metrics" / grid, os.environ["KEEP_GRID"])
    assert grid == MISTAKES_PNG
    with Image.open(root / "metrics" / grid) as image:
        assert image.size == (880, 1000)  # 4 x 4 thumbnails
    section = "\n".join(report.dev_errors_section(analysis, "trained", grid))
    assert f"![Most confident mistakes on dev](plots/{MISTAKES_PNG})" in section
    assert "### Where to look next" in section and "### Confusion pairs" in section
