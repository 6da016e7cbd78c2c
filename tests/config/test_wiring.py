"""The params keys dvc.yaml lists per stage, and the check that tune's are all listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from project_copy import REPO_ROOT

from reprotrain import config, tuning
from reprotrain.config import wiring
from reprotrain.config.errors import UserError
from reprotrain.tuning import defaults, runner


def test_a_section_covers_its_keys() -> None:
    listed = ["train.optim.momentum", "train.schedule", "tune"]
    assert wiring.is_listed("train.schedule.kind", listed)
    assert wiring.is_listed("train.optim.momentum", listed)
    assert wiring.is_listed("tune.space", listed)
    assert not wiring.is_listed("train.optim.lr", listed)
    assert not wiring.is_listed("train.sched", listed)  # a prefix of a name is not a section


def test_no_dvc_yaml_checks_nothing(tmp_path: Path) -> None:
    assert wiring.stage_params("tune", tmp_path / "dvc.yaml") is None
    wiring.check_listed("tune", ["train.optim.lr"], "why", tmp_path / "dvc.yaml")


def _cnn_search(space: dict | None = None):
    """The repository's train and tune params for the CNN (what auto picks on digits), as
    `runner.search_params` returns them; `space` replaces tune.space."""
    train_params, params = config.load("train", "tune", path=REPO_ROOT / "params.yaml")
    if space is not None:
        params = params.model_copy(update={"space": space})
    return runner.search_params(train_params.model_copy(update={"model": "cnn"}), params)


def test_the_repository_lists_every_train_key_tune_reads() -> None:
    """The default space searches optim.lr: dvc.yaml lists every other train key tune reads,
    and not optim.lr, so a learning-rate experiment reruns train and not tune. Under
    `train.model: auto` both models tune may search (the CNN, gradient boosting) count."""
    dvc_file = REPO_ROOT / "dvc.yaml"
    train_params, params = config.load("train", "tune", path=REPO_ROOT / "params.yaml")
    assert train_params.model == "auto"
    runner.check_before_data(train_params, params)
    train_params, params = _cnn_search()
    wiring.check_listed("tune", tuning.train_keys_read(params, train_params), "why", dvc_file)
    listed = wiring.stage_params("tune", dvc_file)
    assert listed is not None
    assert "optim.lr" in defaults.space_of(params)
    assert not wiring.is_listed("train.optim.lr", listed)


def test_a_key_left_to_train_but_not_listed_is_one_line(tmp_path: Path) -> None:
    """Without cnn.channels in tune.space, tune reads train.cnn.channels: dvc.yaml must list it."""
    dvc_file = tmp_path / "dvc.yaml"
    shutil.copy(REPO_ROOT / "dvc.yaml", dvc_file)
    cnn_space = defaults.SPACES["cnn"]
    train_params, params = _cnn_search({k: v for k, v in cnn_space.items() if k != "cnn.channels"})
    keys = tuning.train_keys_read(params, train_params)
    with pytest.raises(UserError) as error:
        wiring.check_listed("tune", keys, "tune.space ...", dvc_file)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{dvc_file}: stages.tune.params: does not list train.cnn.channels")
    assert message.endswith("add `- train.cnn.channels` under stages.tune.params")


def test_only_the_sections_of_models_a_trial_builds_are_read() -> None:
    train_params, params = config.load("train", "tune", path=REPO_ROOT / "params.yaml")
    space = {"optim.lr": defaults.SPACES["cnn"]["optim.lr"]}
    mlp = train_params.model_copy(update={"model": "mlp"})
    keys = tuning.train_keys_read(
        *reversed(runner.search_params(mlp, params.model_copy(update={"space": space})))
    )
    assert "train.mlp.dropout" in keys and "train.optim.momentum" in keys
    assert not any(key.startswith(("train.cnn.", "train.svm.")) for key in keys)
    assert "train.optim.lr" not in keys
    # a scikit-learn model reads no torch section
    boosting = train_params.model_copy(update={"model": "hist_gradient_boosting"})
    keys = tuning.train_keys_read(*reversed(runner.search_params(boosting, params)))
    assert "train.hist_gradient_boosting.max_iter" in keys
    assert not any(key.startswith(("train.optim.", "train.augment.", "train.cnn.")) for key in keys)
