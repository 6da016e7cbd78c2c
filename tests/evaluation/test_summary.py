"""The evaluate stage's pieces: model choice on dev, summaries, MLflow names, its params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import repo_params
from schemas import make_schema

from reprotrain.config.errors import UserError
from reprotrain.evaluation import summary as evaluation
from reprotrain.tracking import stage_logs
from reprotrain.training import learning_curve


def _train(dev: float) -> dict:
    return {
        "baseline": {"dev": {"accuracy": 0.1}},
        "model": {"train": {"accuracy": {"mean": 1.0}}, "dev": {"accuracy": {"mean": dev}}},
    }


def _tune(dev: float) -> dict:
    return {"best_model": {"train": {"accuracy": 0.99}, "dev": {"accuracy": dev}}}


@pytest.mark.parametrize(
    ("trained", "tuned", "selected"),
    [
        pytest.param(0.90, 0.95, "tuned", id="tuned-better"),
        pytest.param(0.95, 0.90, "model", id="trained-better"),
        pytest.param(0.95, 0.95, "model", id="tie-goes-to-trained"),
    ],
)
def test_select_uses_dev_scores_only(trained: float, tuned: float, selected: str) -> None:
    choice, reason = evaluation.select(_train(trained), _tune(tuned), "accuracy")
    assert choice == selected
    assert reason.startswith("dev accuracy")


def test_verdicts_judge_both_models_against_the_baseline() -> None:
    params = repo_params.parse("evaluate", {})
    fit = evaluation.all_verdicts(_train(0.8), _tune(0.98), "accuracy", params)
    assert fit["model"]["verdict"] == "overfitting"  # train 1.0 vs dev 0.8
    assert fit["tuned"]["verdict"] == "good fit"


def test_summarize_scores_each_seed_and_their_mean() -> None:
    params = repo_params.parse("evaluate", {"bootstrap": {"n_resamples": 100}})
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=40)
    predictions = {
        "baseline": (np.zeros(40), None),
        "strong_baseline": (y_true + 0.5, None),
        "seed-0": (y_true + 0.1, None),
        "seed-1": (y_true - 0.3, None),
        "tuned": (y_true, None),
    }
    test = evaluation.scores_on_test(make_schema("regression"), y_true, predictions, params, seed=0)
    assert set(test["model"]["seeds"]) == {"seed-0", "seed-1"}
    assert test["tuned"]["rmse"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    seed_mae = [test["model"]["seeds"][s]["mae"]["value"] for s in ("seed-0", "seed-1")]
    assert test["model"]["mean"]["mae"]["mean"] == pytest.approx(np.mean(seed_mae))
    assert test["model"]["mean"]["mae"]["std"] == pytest.approx(np.std(seed_mae, ddof=1))

    flat = stage_logs.flat_scores(test)
    assert test["strong_baseline"]["mae"]["value"] == pytest.approx(0.5)
    assert flat["test_tuned_rmse"] == 0.0 and "test_tuned_rmse_ci_low" in flat
    assert flat["test_strong_baseline_mae"] == pytest.approx(0.5)
    assert "test_seed-1_mae" in flat and "test_model_mae_std" in flat


def test_model_dirs_order_seeds_numerically(workdir) -> None:
    root = workdir({})
    for seed in (10, 2):
        (root / "models" / "model" / f"seed-{seed}").mkdir(parents=True)
    assert list(evaluation.model_dirs()) == [
        "baseline",
        "strong_baseline",
        "seed-2",
        "seed-10",
        "tuned",
    ]


def test_a_curve_turned_off_reads_as_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "learning_curve.csv"
    pd.DataFrame([], columns=learning_curve.COLUMNS).to_csv(path, index=False)
    assert evaluation.read_curve(path) == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(
            {"bootstrap": {"n_resamples": 10}},
            r"evaluate\.bootstrap\.n_resamples: .*greater than or equal to 100, got 10",
            id="too-few-resamples",
        ),
        pytest.param(
            {"bootstrap": {"confidence": 1.0}},
            r"evaluate\.bootstrap\.confidence: .*less than 1, got 1\.0",
            id="confidence",
        ),
        pytest.param(
            {"registry": {"model_name": "has space"}},
            r"evaluate\.registry\.model_name: .*pattern.*got 'has space'",
            id="model-name",
        ),
        pytest.param(
            {"registry": {"name": "x"}},
            r"unknown key 'evaluate\.registry\.name'; allowed: enabled, model_name",
            id="unknown-key",
        ),
        pytest.param(
            {"calibration_bins": 1},
            r"evaluate\.calibration_bins: .*greater than or equal to 2, got 1",
            id="bins",
        ),
    ],
)
def test_bad_evaluate_params_are_one_line_errors(raw: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        repo_params.parse("evaluate", raw)


def test_the_headline_is_a_few_numbers_of_the_committed_run() -> None:
    """metrics/summary.json (what `dvc metrics` and `dvc exp show` compare) is built from
    the committed evaluate, train and tune metrics: at most 40 numbers, no text."""
    import json

    from project_copy import REPO_ROOT

    from reprotrain.config import flatten

    committed = {
        name: json.loads((REPO_ROOT / "metrics" / f"{name}.json").read_text())
        for name in ("evaluate", "train", "tune", "summary")
    }
    headline = evaluation.headline(committed["evaluate"], committed["train"], committed["tune"])
    assert headline == committed["summary"]
    leaves = flatten(headline)
    assert len(leaves) <= 40
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in leaves.values())
    primary = committed["evaluate"]["primary_metric"]
    assert {
        f"selected.test.{primary}",
        "baseline.dev",
        "strong_baseline.dev",
        "tune_best_dev",
    } <= set(leaves)
