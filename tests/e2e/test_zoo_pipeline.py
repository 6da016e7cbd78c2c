"""train.model: zoo through the real `dvc repro`: a tiny transformers ResNet pretrained on
one generated task sits in pretrained/ as safetensors; the whole pipeline fine-tunes it on
an image folder with other labels, with a new head and the backbone frozen throughout;
evaluate, the report and MLflow see it like any other model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import repo_params
import torch
import yaml
from project_copy import commit_copy, copy_project, dvc
from safetensors.torch import load_file
from zoo_source import SIZE, SOURCE, pretrain, write_image_folder

from reprotrain.config import paths
from reprotrain.data import io

PARAMS = {
    "base": {"seed": 0, "threads": 1},
    "prepare": {
        "source": "data/raw/colours",
        "target": "label",
        "image": {"size": [SIZE, SIZE], "mode": "rgb"},
    },
    "train": {
        "model": "zoo",
        "seeds": [0],
        "device": "cpu",
        "progress": "log",
        "zoo": {"source": SOURCE, "weights": "pretrained", "freeze_epochs": 2},
        "augment": {"enabled": True, "flip": True, "crop_scale": 0.8, "color_jitter": 0.2},
        "optim": {"epochs": 2, "batch_size": 32, "lr": 0.01},
    },
    "tune": {
        "method": "random",
        "n_trials": 1,
        "pruner": "none",
        "fixed": {"optim.epochs": 1, "augment.enabled": False},  # dvc.yaml lists neither
        "space": {"optim.lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True}},
    },
    "learning_curve": {"fractions": []},
    "evaluate": {"bootstrap": {"n_resamples": 100}, "registry": {"enabled": False}},
}


@pytest.mark.e2e
def test_dvc_repro_fine_tunes_a_pretrained_transformers_model(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    copy_project(repo)
    monkeypatch.chdir(repo)
    pretrain()  # pretrained/tiny-resnet: 4 quadrant classes
    write_image_folder(repo / "data/raw/colours", 150, seed=3)  # 3 colour classes
    params = repo_params.everything(PARAMS)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_copy(repo)

    result = dvc(repo, "repro", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    weights = repo / SOURCE / "model.safetensors"
    model_dir = paths.seed_dir(repo / paths.MODEL_DIR, 0)
    config = json.loads((model_dir / "model.json").read_text())
    assert config["name"] == "zoo" and config["n_classes"] == 3
    assert config["net"]["architecture"]["model_type"] == "resnet"
    assert config["init_from"]["sha256"] == io.file_digest(weights)
    file_state = load_file(weights)
    state = torch.load(model_dir / "weights.pt", weights_only=True)
    assert state["1.model.classifier.1.weight"].shape == (3, 16)  # a head for the colours
    assert file_state["classifier.1.weight"].shape == (4, 16)
    # frozen for both epochs: the backbone ends exactly as the file holds it
    for key, tensor in file_state.items():
        if not key.startswith("classifier."):
            assert torch.equal(state[f"1.model.{key}"], tensor), key

    evaluation = json.loads((repo / paths.EVALUATE_METRICS).read_text())
    assert evaluation  # the sealed-test evaluation ran on the zoo model
    assert (repo / paths.REPORT).is_file()

    from mlflow.tracking import MlflowClient

    from reprotrain import tracking

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    train_run = next(
        run
        for run in runs
        if run.data.tags.get("stage") == "train" and run.data.tags.get(tracking.RUN_KIND) == "stage"
    )
    assert train_run.data.params["zoo.architecture"] == "ResNetForImageClassification"
    assert train_run.data.params["zoo.sha256"] == io.file_digest(weights)
    assert train_run.data.tags["zoo.path"] == f"{SOURCE}/model.safetensors"
    assert train_run.data.tags["zoo.source"] == SOURCE
