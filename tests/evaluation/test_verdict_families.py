"""Fit verdicts that fit the model and the data: remedies per family, underfitting judged
against what a strong simple baseline reaches, no remedy against the learning curve; the
tuned model chosen only when it beats the trained one beyond the noise of dev."""

from __future__ import annotations

import pytest
import repo_params

from reprotrain.evaluation import summary as evaluation
from reprotrain.evaluation import verdicts


def _verdict(train: float, dev: float, **kwargs) -> dict:
    return verdicts.fit_verdict(train, dev, 0.0, overfit_gap=0.05, underfit_skill=0.8, **kwargs)


@pytest.mark.parametrize(
    ("model", "named", "never"),
    [
        ("hist_gradient_boosting", "train.hist_gradient_boosting.max_leaf_nodes", "dropout"),
        ("random_forest", "train.random_forest.max_depth", "dropout"),
        ("logistic_regression", "train.logistic_regression.C down", "dropout"),
        ("linear_regression", "train.linear_regression.alpha up", "dropout"),
        ("cnn", "train.cnn.dropout up", "max_leaf_nodes"),
        ("mlp", "train.optim.weight_decay", "C down"),
    ],
)
def test_an_overfitting_remedy_names_the_familys_own_params(model, named, never) -> None:
    result = _verdict(1.0, 0.85, model=model)
    assert result["verdict"] == "overfitting"
    assert named in result["remedy"] and never not in result["remedy"]


def test_a_noisy_target_reached_by_the_strong_baseline_is_not_underfitting() -> None:
    # diabetes: R^2 about 0.5 is what any model reaches; 80% of perfect cannot be asked
    noisy = _verdict(0.50, 0.47, model="hist_gradient_boosting", reachable_dev_score=0.45)
    assert noisy["verdict"] == "good fit"
    assert "the target looks noisy" in noisy["reason"]
    weak = _verdict(0.40, 0.38, model="hist_gradient_boosting", reachable_dev_score=0.45)
    assert weak["verdict"] == "underfitting"
    assert "below the strong baseline's 0.4500" in weak["reason"]
    assert "max_leaf_nodes up" in weak["remedy"]


def test_no_remedy_offers_more_data_the_learning_curve_says_will_not_help() -> None:
    flat = _verdict(1.0, 0.85, model="hist_gradient_boosting", more_data_helps=False)
    assert flat["verdict"] == "overfitting" and "more data" not in flat["remedy"]
    rising = _verdict(1.0, 0.85, model="hist_gradient_boosting", more_data_helps=True)
    assert rising["remedy"].startswith("more data, ")
    good = _verdict(0.99, 0.98, model="cnn", more_data_helps=False)
    assert good["remedy"] == "none needed; tuning may still help"
    assert _verdict(0.3, 0.3, model="svm")["remedy"].startswith("weaker regularization")


def test_all_verdicts_use_the_strong_baseline_and_each_models_family() -> None:
    train = {
        "baseline": {"dev": {"r2": 0.0}},
        "strong_baseline": {"dev": {"r2": 0.45}},
        "model": {"train": {"r2": {"mean": 0.50}}, "dev": {"r2": {"mean": 0.46}}},
        "model_choice": {"chosen": "linear_regression"},
    }
    tune = {
        "model": "hist_gradient_boosting",
        "best_params": {},
        "best_model": {"train": {"r2": 0.9}, "dev": {"r2": 0.44}},
    }
    params = repo_params.parse("evaluate", {})
    flat_curve = {"verdict": "more data unlikely to help much"}
    fit = evaluation.all_verdicts(train, tune, "r2", params, flat_curve)
    assert fit["model"]["verdict"] == "good fit"  # reaches the strong baseline's 0.45
    assert fit["tuned"]["verdict"] == "overfitting"
    assert "max_leaf_nodes down" in fit["tuned"]["remedy"]
    assert "more data" not in fit["tuned"]["remedy"]


def _on_dev(difference: float, low: float, high: float, verdict: str) -> dict:
    return {"difference": difference, "ci_low": low, "ci_high": high, "verdict": verdict}


def test_the_tuned_model_replaces_the_trained_one_only_beyond_the_noise_of_dev() -> None:
    train = {"model": {"dev": {"accuracy": {"mean": 0.975}}}}
    tune = {"best_model": {"dev": {"accuracy": 0.981}}}
    within = _on_dev(0.006, -0.004, 0.016, "within noise")
    selected, reason = evaluation.select(train, tune, "accuracy", within)
    assert selected == "model"
    assert reason == (
        "dev accuracy tuned − trained +0.0060 [-0.0040, +0.0160] (paired bootstrap on dev): "
        "within noise; kept the trained model, the simpler (no search)"
    )
    better = _on_dev(0.03, 0.01, 0.05, "better")
    assert evaluation.select(train, tune, "accuracy", better)[0] == "tuned"
    assert evaluation.select(train, tune, "accuracy")[0] == "tuned"  # no dev comparison
