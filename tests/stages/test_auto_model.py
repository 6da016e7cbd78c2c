"""`train.model: auto` through the real stages on scikit-learn's bundled data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from schemas import make_schema

from reprotrain.config import paths
from reprotrain.models import choice
from reprotrain.models.model import load_model
from stages import prepare, split, train


def _prepared(
    workdir, source: str, train_overrides: dict | None = None, cv_folds: int | str = "auto"
) -> Path:
    root = workdir(
        {
            "prepare": {"source": source},
            "split": {"cv_folds": cv_folds},
            "train": {"seeds": [0, 1], "progress": "off", **(train_overrides or {})},
            "learning_curve": {"fractions": [0.5, 1.0]},
        }
    )
    prepare.main()
    split.main()
    return root


@pytest.mark.parametrize("cv_folds", [0, "auto"], ids=["dev split", "cross-validation"])
@pytest.mark.parametrize(
    ("source", "linear"),
    [("sklearn:wine", "logistic_regression"), ("sklearn:diabetes", "linear_regression")],
    ids=["classification", "regression"],
)
def test_auto_on_a_table_keeps_boosting_only_when_it_beats_the_linear_model_beyond_noise(
    workdir, source: str, linear: str, cv_folds: int | str
) -> None:
    root = _prepared(workdir, source, cv_folds=cv_folds)
    train.main()
    summary = json.loads((root / paths.TRAIN_METRICS).read_text())
    chosen = summary["model_choice"]
    assert chosen["requested"] == "auto"
    flexible_models = ["hist_gradient_boosting", "random_forest", "svm"]
    assert set(chosen["dev_scores"]) == {*flexible_models, linear}
    scores = chosen["dev_scores"]
    # the best-scoring flexible model is compared with the linear one
    best_flexible = max(flexible_models, key=lambda name: scores[name])
    comparison = chosen["dev_comparison"]
    assert comparison["models"] == [best_flexible, linear]
    assert comparison["ci_low"] <= comparison["difference"] <= comparison["ci_high"]
    beyond_noise = comparison["verdict"] == "better"
    assert chosen["chosen"] == (best_flexible if beyond_noise else linear)
    # the dev-score difference is the paired one's point value
    difference = scores[best_flexible] - scores[linear]
    assert comparison["difference"] == pytest.approx(difference)
    best = scores[chosen["chosen"]]
    for seed in (0, 1):
        assert load_model(paths.seed_dir(root / paths.MODEL_DIR, seed)).name == chosen["chosen"]
    primary = summary["primary_metric"]
    first_seed = summary["model"]["seeds"]["0"]
    if cv_folds == 0:
        assert summary["validation"]["method"] == "holdout"
        assert first_seed["dev"][primary] == pytest.approx(best)
        return
    # small data: 5 folds over train+dev; the seed's dev score is the mean over its folds
    assert summary["validation"] == {
        "method": "cross-validation",
        "folds": 5,
        "repeats": 1,
        "rows": summary["validation"]["rows"],
        "refit_rows": summary["validation"]["rows"],
    }
    assert comparison["on"] == "on out-of-fold predictions"
    folds = [row[primary] for row in first_seed["dev_folds"]]
    assert len(folds) == 5
    assert first_seed["dev"][primary] == pytest.approx(sum(folds) / 5)


def test_an_explicit_model_is_kept_on_a_table(workdir) -> None:
    root = _prepared(workdir, "sklearn:wine", {"model": "random_forest"})
    train.main()
    summary = json.loads((root / paths.TRAIN_METRICS).read_text())
    assert summary["model_choice"] == {"requested": "random_forest", "chosen": "random_forest"}
    assert load_model(paths.seed_dir(root / paths.MODEL_DIR, 0)).name == "random_forest"


@pytest.mark.parametrize(
    ("task", "image_shape", "expected"),
    [
        ("classification", [1, 8, 8], ["cnn"]),
        (
            "classification",
            None,
            ["hist_gradient_boosting", "random_forest", "svm", "logistic_regression"],
        ),
        (
            "regression",
            None,
            ["hist_gradient_boosting", "random_forest", "svm", "linear_regression"],
        ),
    ],
    ids=["images", "table-classification", "table-regression"],
)
def test_auto_candidates_follow_the_data(task, image_shape, expected) -> None:
    schema = make_schema(task, [0, 1] if task == "classification" else None, image_shape)
    assert choice.candidates("auto", schema) == expected
    # beyond a small table, no forest or SVM (an SVM's fit grows with rows squared)
    large = [name for name in expected if name not in ("random_forest", "svm")]
    assert choice.candidates("auto", schema, choice.SMALL_TABLE_ROWS + 1) == large
    assert choice.candidates("svm", schema) == ["svm"]
    assert choice.resolve("auto", schema) == expected[0]
