"""Learning curve: nested stratified subsets, one fit per fraction, the full fit reused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import repo_params

from reprotrain.config.errors import UserError
from reprotrain.data import datasets
from reprotrain.data.features import fit_preprocessor
from reprotrain.training import learning_curve


def test_stratified_prefixes_keep_the_class_mix() -> None:
    targets = np.array([0] * 60 + [1] * 30 + [2] * 10)
    order = learning_curve.subset_order(targets, seed=0, stratify=True)
    assert sorted(order) == list(range(100))
    for size in (10, 20, 50):
        counts = np.bincount(targets[order[:size]], minlength=3)
        expected = np.array([0.6, 0.3, 0.1]) * size
        assert np.abs(counts - expected).max() <= 1, (size, counts)


def test_subset_order_is_seeded() -> None:
    targets = np.arange(40) % 4
    first = learning_curve.subset_order(targets, seed=1, stratify=True)
    assert (first == learning_curve.subset_order(targets, seed=1, stratify=True)).all()
    assert (first != learning_curve.subset_order(targets, seed=2, stratify=True)).any()
    plain = learning_curve.subset_order(targets, seed=1, stratify=False)
    assert sorted(plain) == list(range(40))


def test_learning_curve_fits_each_fraction_and_reuses_the_full_fit() -> None:
    features = np.arange(100, dtype=np.float32).reshape(50, 2)
    targets = np.arange(50) % 2
    seen_sizes = []

    def fit(subset):
        seen_sizes.append(len(subset[1]))
        return SimpleNamespace(train_scores={"accuracy": 1.0}, dev_scores={"accuracy": 0.5})

    full = SimpleNamespace(train_scores={"accuracy": 0.9}, dev_scores={"accuracy": 0.8})
    rows = learning_curve.learning_curve(
        fit, (features, targets), [0.1, 0.5, 1.0], "accuracy", seed=0, stratify=True, full=full
    )
    assert seen_sizes == [5, 25]  # 1.0 reuses `full`
    assert [row["n_train"] for row in rows] == [5, 25, 50]
    assert rows[-1] == {"fraction": 1.0, "n_train": 50, "train_score": 0.9, "dev_score": 0.8}
    assert list(rows[0]) == learning_curve.COLUMNS


def test_a_tiny_fraction_still_gets_every_class() -> None:
    assert learning_curve.subset_size(100, 0.01, minimum=3) == 3
    assert learning_curve.subset_size(10, 1.0, minimum=3) == 10


def test_for_train_fits_the_configured_model(classification_frame: pd.DataFrame) -> None:
    schema = datasets.build_schema(classification_frame, "label", "classification", "test", None)
    preprocessor = fit_preprocessor(classification_frame, schema, repo_params.features())
    data = (
        preprocessor.transform(classification_frame),
        datasets.encode_target(classification_frame, schema),
    )
    params = repo_params.parse("train", {"model": "logistic_regression", "seeds": [0]})
    from reprotrain.training.fitting import fit_and_score

    full = fit_and_score(params, schema, 0, data, data)
    rows = learning_curve.for_train(params, [0.2, 1.0], schema, data, data, full)
    assert [row["n_train"] for row in rows] == [18, 90]
    assert rows[1]["dev_score"] == full.dev_scores["accuracy"]
    assert all(0.0 <= row["dev_score"] <= 1.0 for row in rows)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(
            {"fractions": [0.5, 0.2]},
            r"learning_curve: fractions must be strictly increasing",
            id="order",
        ),
        pytest.param(
            {"fractions": [0.0, 1.0]},
            r"learning_curve\.fractions\.0: .*greater than 0, got 0\.0",
            id="zero",
        ),
        pytest.param(
            {"fractions": [1.5]},
            r"learning_curve\.fractions\.0: .*less than or equal to 1",
            id="over",
        ),
        pytest.param({"fraction": [1.0]}, r"unknown key 'learning_curve\.fraction'", id="typo"),
    ],
)
def test_bad_fractions_are_one_line_errors(raw: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        repo_params.parse("learning_curve", raw)


def test_no_fractions_turn_the_curve_off() -> None:
    assert repo_params.parse("learning_curve", {"fractions": []}).fractions == []
    rows = learning_curve.learning_curve(
        lambda subset: None, (np.zeros((4, 1)), np.zeros(4)), [], "r2", 0, False
    )
    assert rows == []
