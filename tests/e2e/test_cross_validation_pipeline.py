"""End to end on a small table (sklearn:wine, 178 rows) with a plain `dvc repro`: with only
`prepare.source` set, `split` cuts 5 cross-validation folds over train+dev (its dev split
would hold 36 rows), train and tune score on them, the final models are refit on all 142
train+dev rows, and evaluate chooses on out-of-fold predictions. The test split stays sealed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from project_copy import REPO_ROOT, committed_copy, dvc
from repo_params import merge

from reprotrain.config import paths
from reprotrain.data import folds

SMALL = {  # defaults, but fewer seeds, trials and resamples: a few minutes on 2 cores
    "prepare": {"source": "sklearn:wine"},
    "train": {"seeds": [0, 1]},
    "tune": {"n_trials": 4},
    "learning_curve": {"fractions": [0.5, 1.0]},
    "evaluate": {"bootstrap": {"n_resamples": 200}, "registry": {"enabled": False}},
}


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    repo = tmp_path_factory.mktemp("wine") / "repo"
    committed_copy(repo, merge(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()), SMALL))
    result = dvc(repo, "repro")
    return {"repo": repo, "log": result.stdout + result.stderr}


def _json(repo: Path, path: Path) -> dict[str, Any]:
    return json.loads((repo / path).read_text())


def test_small_data_gets_folds_and_the_test_split_stays_out(wine: dict[str, Any]) -> None:
    repo = wine["repo"]
    split = _json(repo, paths.SPLIT_METRICS)
    assert split["sizes"]["dev"] == 36 and split["sizes"]["test"] == 36
    assert split["cross_validation"]["folds"] == 5
    assert "36 rows (< 300)" in split["cross_validation"]["reason"]
    codes = folds.read(repo / paths.FOLDS)
    assert codes.shape == (142, 1) and sorted(np.bincount(codes[:, 0])) == [28, 28, 28, 29, 29]
    assert "cross-validation: 5 folds x 1 repeats over 142 train+dev rows" in wine["log"]


def test_train_reports_fold_scores_and_refits_on_train_and_dev(wine: dict[str, Any]) -> None:
    repo = wine["repo"]
    train = _json(repo, paths.TRAIN_METRICS)
    assert train["validation"]["method"] == "cross-validation"
    assert train["validation"]["refit_rows"] == 142
    first = train["model"]["seeds"]["0"]
    assert len(first["dev_folds"]) == 5
    folds_mean = np.mean([row["accuracy"] for row in first["dev_folds"]])
    assert first["dev"]["accuracy"] == pytest.approx(folds_mean)
    # the std is over every fold of every seed: 10 numbers, not 2
    every = [
        row["accuracy"] for seed in ("0", "1") for row in train["model"]["seeds"][seed]["dev_folds"]
    ]
    assert train["model"]["dev"]["accuracy"]["std"] == pytest.approx(np.std(every, ddof=1))
    choice = train["model_choice"]
    assert choice["dev_comparison"]["on"] == "on out-of-fold predictions"
    assert set(choice["dev_scores"]) == {
        "hist_gradient_boosting",
        "random_forest",
        "svm",
        "logistic_regression",
    }
    assert train["strong_baseline"]["dev"]["accuracy"] > 0.9  # scored over the folds too
    oof = pd.read_csv(repo / paths.DEV_ERRORS["model"] / paths.CV_PREDICTIONS)
    assert len(oof) == 142
    # the learning curve: the folds' curves averaged (about 4/5 of 142 rows at 100%)
    curve = pd.read_csv(repo / paths.LEARNING_CURVE)
    assert curve["n_train"].tolist() == pytest.approx([57, 113.6], abs=0.5)


def test_tune_scores_trials_on_folds_and_evaluate_chooses_out_of_fold(
    wine: dict[str, Any],
) -> None:
    repo = wine["repo"]
    tune = _json(repo, paths.TUNE_METRICS)
    assert tune["validation"]["method"] == "cross-validation"
    assert len(tune["best_model"]["dev_folds"]) == 5
    evaluate = _json(repo, paths.EVALUATE_METRICS)
    selected = evaluate["selected"]
    assert "paired bootstrap on out-of-fold predictions" in selected["reason"]
    assert selected["dev_comparison"]["on"] == "on out-of-fold predictions"
    assert evaluate["n_test"] == 36
    report = (repo / paths.REPORT).read_text()
    assert "Dev scores: 5-fold cross-validation over the 142 train+dev rows" in report
    # only evaluate read test: train and tune ran before it and never listed it
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in ("train", "tune"):
        deps = {dep["path"] for dep in lock["stages"][stage]["deps"]}
        assert "data/split/folds.parquet" in deps and "data/split/test.parquet" not in deps
