"""Fine-tuning and transfer through DVC: `dvc repro` pretrains, `dvc exp run -S
train.init_from...` fine-tunes (whole pipeline, tune included) and transfers to a new label
set; the folder pretrained/ is a dependency of train and tune (the checkpoint's path a param
of both), and MLflow links the run that wrote it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import repo_params
import yaml
from project_copy import commit_copy, copy_project, dvc, git
from sklearn.datasets import load_digits

from reprotrain.config import paths
from reprotrain.data import io

CHECKPOINT = "pretrained/digits-mlp"
SMALL = {
    "base": {"seed": 0, "threads": 1},
    "prepare": {"source": "data/raw/digits.csv", "target": "label"},
    "train": {
        "model": "mlp",
        "seeds": [0],
        "device": "cpu",
        # not "off": `dvc exp run -S` rewrites params.yaml in YAML 1.2 without quotes, and
        # PyYAML (YAML 1.1) reads a bare off as false
        "progress": "log",
        "mlp": {"hidden_sizes": [32], "dropout": 0.0},
        "augment": {"enabled": False},
        "optim": {"epochs": 3, "batch_size": 64},
    },
    "tune": {
        "method": "random",
        "n_trials": 1,
        "pruner": "none",
        "space": {
            "optim.lr": {"type": "float", "low": 0.0005, "high": 0.002, "log": True},
            # left out of the search once trials start from the checkpoint
            "mlp.hidden_sizes": {"type": "categorical", "choices": [[16], [48]]},
        },
    },
    "learning_curve": {"fractions": []},
    "evaluate": {"bootstrap": {"n_resamples": 100}, "registry": {"enabled": False}},
}


def _params() -> dict[str, Any]:
    """The repository's params.yaml with SMALL merged in."""
    return repo_params.everything(SMALL)


def _write_digits(repo: Path) -> None:
    """Two CSV sources with the same 64 pixel columns: digit labels, and even/odd labels."""
    bunch = load_digits()
    frame = pd.DataFrame(bunch.data, columns=[f"p{i}" for i in range(64)])
    (repo / "data/raw").mkdir(parents=True)
    frame.assign(label=bunch.target)[:600].to_csv(repo / "data/raw/digits.csv", index=False)
    parity = pd.Series(bunch.target % 2).map({0: "even", 1: "odd"})
    frame.assign(label=parity)[600:900].to_csv(repo / "data/raw/parity.csv", index=False)


def _dvc_output(repo: Path, *args: str) -> str:
    result = dvc(repo, *args, timeout=600)
    return result.stdout + result.stderr


def _model_config(repo: Path) -> dict[str, Any]:
    return json.loads((paths.seed_dir(repo / paths.MODEL_DIR, 0) / "model.json").read_text())


def _runs(repo: Path, stage: str) -> tuple[list[Any], list[Any]]:
    """Top-level MLflow runs of a stage, newest first, and all runs."""
    from mlflow.tracking import MlflowClient

    from reprotrain import tracking

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000
    )
    return [
        run
        for run in runs
        if run.data.tags.get("stage") == stage and run.data.tags.get(tracking.RUN_KIND) == "stage"
    ], runs


@pytest.mark.e2e
def test_finetune_and_transfer_through_dvc_exp_run(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_project(repo)
    _write_digits(repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(_params(), sort_keys=False))
    commit_copy(repo)

    # 1. Pretrain on digits 0-9 and keep the model as a checkpoint under pretrained/.
    dvc(repo, "repro", "train")
    shutil.copytree(paths.seed_dir(repo / paths.MODEL_DIR, 0), repo / CHECKPOINT)
    digest = io.file_digest(repo / CHECKPOINT / "weights.pt")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pretrained checkpoint")

    # 2. Fine-tune: the whole pipeline, tune inheriting train.init_from.
    output = _dvc_output(
        repo,
        "exp",
        "run",
        "-S",
        "train.init_from.mode=finetune",
        "-S",
        f"train.init_from.path={CHECKPOINT}",
    )
    finetuned = _model_config(repo)
    assert finetuned["init_from"] == {"mode": "finetune", "path": CHECKPOINT, "sha256": digest}
    assert "not searching mlp.hidden_sizes" in output
    tuned = json.loads((repo / paths.TUNED_DIR / "model.json").read_text())
    assert tuned["init_from"]["sha256"] == digest
    assert tuned["net"]["hidden_sizes"] == [32]  # the checkpoint's
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in ("train", "tune"):
        assert "pretrained" in {dep["path"] for dep in lock["stages"][stage]["deps"]}
        params = lock["stages"][stage]["params"]["params.yaml"]
        # train lists its whole section; tune lists its train keys one by one
        init_from = params["train"]["init_from"] if stage == "train" else params["train.init_from"]
        assert init_from["path"] == CHECKPOINT
    train_runs, all_runs = _runs(repo, "train")
    pretrain_seed = next(
        run
        for run in all_runs
        if run.data.tags.get("mlflow.parentRunId") == train_runs[-1].info.run_id
    )
    tags = train_runs[0].data.tags
    assert tags["init_from.sha256"] == digest == pretrain_seed.data.tags["weights_sha256"]
    assert tags["init_from.mlflow_run_id"] == pretrain_seed.info.run_id
    assert train_runs[0].data.params["init_from.sha256"] == digest
    tune_tags = _runs(repo, "tune")[0][0].data.tags
    assert tune_tags["init_from.mlflow_run_id"] == pretrain_seed.info.run_id

    # 3. Transfer to another label set (even/odd): a new output layer, backbone frozen first.
    output = _dvc_output(
        repo,
        "exp",
        "run",
        "train",
        "-S",
        "prepare.source=data/raw/parity.csv",
        "-S",
        "train.init_from.mode=transfer",
        "-S",
        f"train.init_from.path={CHECKPOINT}",
        "-S",
        "train.init_from.freeze_epochs=2",
        "-S",
        "train.init_from.backbone_lr_factor=0.1",
    )
    assert "epoch 3: backbone unfrozen (lr x 0.1)" in output
    transferred = _model_config(repo)
    assert transferred["n_classes"] == 2
    assert transferred["init_from"]["mode"] == "transfer"

    # 4. A changed checkpoint makes train and tune stale (the folder is their dependency).
    shutil.copy2(paths.seed_dir(repo / paths.MODEL_DIR, 0) / "weights.pt", repo / CHECKPOINT)
    for stage in ("train", "tune"):
        status = dvc(repo, "status", stage).stdout
        assert re.search(r"modified:\s+pretrained\n", status), status
