"""The params keys dvc.yaml lists per stage, and the check that tune's are all listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from project_copy import REPO_ROOT

from reprotrain import config, tuning
from reprotrain.config import wiring
from reprotrain.config.errors import UserError
from reprotrain.tuning import runner


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


def test_the_repository_lists_every_train_key_tune_reads() -> None:
    """The default space searches optim.lr: dvc.yaml lists every other train key tune reads,
    and not optim.lr, so a learning-rate experiment reruns train and not tune."""
    train_params, params = config.load("train", "tune", path=REPO_ROOT / "params.yaml")
    train_params, params = runner.search_params(train_params, params)
    dvc_file = REPO_ROOT / "dvc.yaml"
    wiring.check_listed("tune", tuning.train_keys_read(params, train_params), "why", dvc_file)
    listed = wiring.stage_params("tune", dvc_file)
    assert listed is not None
    assert "optim.lr" in params.space and not wiring.is_listed("train.optim.lr", listed)


def test_a_key_left_to_train_but_not_listed_is_one_line(tmp_path: Path) -> None:
    """Without cnn.channels in tune.space, tune reads train.cnn.channels: dvc.yaml must list it."""
    dvc_file = tmp_path / "dvc.yaml"
    shutil.copy(REPO_ROOT / "dvc.yaml", dvc_file)
    train_params, params = config.load("train", "tune", path=REPO_ROOT / "params.yaml")
    space = {key: spec for key, spec in params.space.items() if key != "cnn.channels"}
    narrower = params.model_copy(update={"space": space})
    train_params, params = runner.search_params(train_params, narrower)
    keys = tuning.train_keys_read(params, train_params)
    with pytest.raises(UserError) as error:
        wiring.check_listed("tune", keys, "tune.space ...", dvc_file)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{dvc_file}: stages.tune.params: does not list train.cnn.channels")
    assert message.endswith("add `- train.cnn.channels` under stages.tune.params")


def test_only_the_sections_of_models_a_trial_builds_are_read() -> None:
    train_params, params = config.load("train", "tune", path=REPO_ROOT / "params.yaml")
    space = {"optim.lr": params.space["optim.lr"]}
    mlp = train_params.model_copy(update={"model": "mlp"})
    keys = tuning.train_keys_read(params.model_copy(update={"space": space}), mlp)
    assert "train.mlp.dropout" in keys and "train.optim.momentum" in keys
    assert not any(key.startswith(("train.cnn.", "train.svm.")) for key in keys)
    assert "train.optim.lr" not in keys
