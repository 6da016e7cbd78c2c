"""tune.space / tune.fixed `auto`: a space per model; keys the model never reads are errors."""

from __future__ import annotations

import pytest
import repo_params

from reprotrain.config import TORCH_MODELS
from reprotrain.config.errors import UserError
from reprotrain.tuning import defaults, runner, search

SPACE_CNN_BEFORE_AUTO = {  # params.yaml's space before `auto`: digits must tune as it did
    "optim.lr": {"type": "float", "low": 0.0003, "high": 0.01, "log": True},
    "cnn.channels": {"type": "categorical", "choices": [[8, 16], [16, 32], [32, 64]]},
    "cnn.dropout": {"type": "float", "low": 0.0, "high": 0.4},
}


def _params(model: str, tune: dict | None = None):
    train = repo_params.parse("train", {"model": model})
    return train, repo_params.parse("tune", tune or {})


def test_the_cnn_default_is_the_space_and_fixed_digits_tuned_with() -> None:
    train, tune = _params("cnn")
    resolved = defaults.resolve(tune, "cnn")
    expected = repo_params.parse("tune", {"space": SPACE_CNN_BEFORE_AUTO}).space
    assert resolved.space == expected
    assert list(resolved.space) == list(SPACE_CNN_BEFORE_AUTO)  # the order trials suggest in
    assert resolved.fixed == {"augment.enabled": False, "optim.epochs": 15}


@pytest.mark.parametrize("model", sorted(defaults.SPACES))
def test_every_default_space_is_valid_and_read_by_its_model(model: str) -> None:
    train, tune = _params(model)
    train_params, resolved = runner.search_params(train, tune)  # every extreme applied
    space = defaults.space_of(resolved)
    assert space and all(defaults.reads(model, key) for key in space)
    expected_fixed = {"augment.enabled", "optim.epochs"} if model in TORCH_MODELS else set()
    assert set(defaults.fixed_of(resolved)) == expected_fixed
    # what tune reads of train (dvc.yaml lists it): neither the searched nor the fixed keys,
    # nor what the model never reads (the torch sections for a scikit-learn model)
    read = {key.removeprefix("train.") for key in search.train_keys_read(resolved, train_params)}
    assert not read & (set(space) | expected_fixed)
    assert all(defaults.reads(model, key) for key in read)
    assert ("optim.batch_size" in read) is (model in TORCH_MODELS)


def test_the_boosting_space_covers_rate_leaves_regularization_and_leaf_size() -> None:
    assert set(defaults.SPACES["hist_gradient_boosting"]) == {
        "hist_gradient_boosting.learning_rate",
        "hist_gradient_boosting.max_leaf_nodes",
        "hist_gradient_boosting.min_samples_leaf",
        "hist_gradient_boosting.l2_regularization",
    }


@pytest.mark.parametrize(
    ("section", "entries", "named"),
    [
        ("space", {"cnn.dropout": {"type": "float", "low": 0.0, "high": 0.4}}, "cnn.dropout"),
        ("space", {"optim.lr": {"type": "float", "low": 0.001, "high": 0.1}}, "optim.lr"),
        ("fixed", {"optim.epochs": 15, "augment.enabled": False}, "optim.epochs, augment.enabled"),
    ],
    ids=["other-model", "torch-only", "fixed"],
)
def test_a_key_the_model_never_reads_is_one_line_naming_it(section, entries, named) -> None:
    train, tune = _params("hist_gradient_boosting", {section: entries})
    with pytest.raises(UserError, match=rf"tune\.{section}: .*never reads {named};") as caught:
        runner.search_params(train, tune)
    assert "\n" not in str(caught.value)


def test_auto_fixed_keeps_only_what_a_searched_model_reads() -> None:
    space = {"model": {"type": "categorical", "choices": ["random_forest", "svm"]}}
    train, tune = _params("cnn", {"space": space})
    assert defaults.fixed_of(defaults.resolve(tune, "cnn")) == {}
    with_net = {"model": {"type": "categorical", "choices": ["random_forest", "mlp"]}}
    _, tune = _params("cnn", {"space": with_net})
    assert set(defaults.fixed_of(defaults.resolve(tune, "cnn"))) == {
        "augment.enabled",
        "optim.epochs",
    }
