"""Issue 3's training features on real code paths: models, imbalance, augmentation,
schedules, determinism and resume after a real kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import repo_params
import torch
import yaml
from project_copy import REPO_ROOT
from schemas import make_schema
from sklearn.datasets import load_breast_cancer, make_classification

from reprotrain import config
from reprotrain.config import MODEL_NAMES
from reprotrain.config.errors import UserError
from reprotrain.data.features import fit_preprocessor
from reprotrain.models import torch_loop as training
from reprotrain.models.augment import make_augment
from reprotrain.models.model import load_model, save_model
from reprotrain.training.fitting import fit_and_score, resample, resolve_progress


def train_params(**overrides) -> config.TrainParams:
    raw = {
        "model": "mlp",
        "seeds": [0],
        "checkpoint": False,
        "progress": "off",
        "optim": {"epochs": 30},
        "early_stopping": {"patience": 5},
    }
    return repo_params.parse("train", repo_params.nested(raw, overrides))


def split_arrays(features, labels, seed=0):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    cut = int(0.7 * len(labels))
    train, dev = order[:cut], order[cut:]
    return (features[train].astype(np.float32), labels[train]), (
        features[dev].astype(np.float32),
        labels[dev],
    )


@pytest.fixture(scope="module")
def blobs():
    features, labels = make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    schema = make_schema("classification", [0, 1, 2])
    return schema, *split_arrays(features, labels)


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 4))
    target = features @ np.array([2.0, -1.0, 0.5, 0.0]) + 10 + rng.normal(scale=0.1, size=300)
    schema = make_schema("regression")
    return schema, *split_arrays(features, target.astype(np.float32))


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    schema = make_schema("classification", range(10), [1, 8, 8])
    return schema, *split_arrays(bunch.data, bunch.target)


TABULAR = [name for name in MODEL_NAMES if name not in ("cnn", "zoo")]  # zoo: test_zoo.py


@pytest.mark.parametrize("name", TABULAR, ids=TABULAR)
def test_every_model_learns_and_round_trips(name, blobs, regression_data, tmp_path):
    schema, train, dev = regression_data if name == "linear_regression" else blobs
    fitted = fit_and_score(train_params(model=name), schema, 0, train, dev)
    primary = "accuracy" if schema.task == "classification" else "r2"
    assert fitted.dev_scores[primary] > (0.6 if primary == "accuracy" else 0.9)
    assert fitted.history and {"train_loss", "dev_loss"} <= set(fitted.history[0])
    frame = pd.DataFrame(train[0], columns=[f"f{i}" for i in range(train[0].shape[1])])
    feature_schema = make_schema(schema.task, schema.classes, features=list(frame.columns))
    save_model(
        fitted.model,
        fit_preprocessor(frame, feature_schema, repo_params.features()),
        tmp_path / name,
    )
    loaded = load_model(tmp_path / name)
    np.testing.assert_allclose(loaded.predict(dev[0]), fitted.model.predict(dev[0]), rtol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "svm", "random_forest", "hist_gradient_boosting"])
def test_regression_models(name, regression_data):
    schema, train, dev = regression_data
    fitted = fit_and_score(train_params(model=name, **{"optim.epochs": 60}), schema, 0, train, dev)
    assert fitted.dev_scores["r2"] > 0.8
    assert {"rmse", "mae", "r2"} <= set(fitted.dev_scores)


def test_cnn_needs_image_shaped_data(blobs):
    schema, train, dev = blobs
    with pytest.raises(UserError, match=r"train.model: cnn needs image-shaped data"):
        fit_and_score(train_params(model="cnn"), schema, 0, train, dev)


def test_augment_is_skipped_on_tabular_data(blobs, caplog):
    """params.yaml enables augmentation (for digits): an mlp on tabular data trains as if it
    were off, and the log says why."""
    schema, train, dev = blobs
    caplog.set_level("INFO")
    on = fit_and_score(train_params(**{"augment.enabled": True}), schema, 0, train, dev)
    off = fit_and_score(train_params(**{"augment.enabled": False}), schema, 0, train, dev)
    assert on.dev_scores == off.dev_scores
    assert "train.augment.enabled: skipped, the data is tabular" in caplog.text


def test_imbalance_on_regression_is_refused(regression_data):
    schema, train, dev = regression_data
    with pytest.raises(UserError, match=r"train.imbalance: .* got 'oversample'"):
        fit_and_score(train_params(imbalance="oversample"), schema, 0, train, dev)


@pytest.mark.slow
def test_cnn_with_augmentation_learns_digits(digits):
    schema, train, dev = digits
    params = train_params(model="cnn", **{"augment.enabled": True, "optim.epochs": 8})
    fitted = fit_and_score(params, schema, 0, train, dev)
    assert fitted.dev_scores["accuracy"] > 0.9


def test_augment_is_seeded_and_keeps_shape():
    batch = torch.rand(16, 64) * 16
    augment = make_augment(repo_params.augment(enabled=True, noise=0.1), [1, 8, 8], pixel_std=5.0)
    first = augment(batch, torch.Generator().manual_seed(3))
    second = augment(batch, torch.Generator().manual_seed(3))
    assert first.shape == batch.shape
    assert torch.equal(first, second)
    assert not torch.equal(first, batch)
    identity = make_augment(
        repo_params.augment(enabled=True, shift=0, rotate=0, noise=0), [1, 8, 8], 1
    )
    assert torch.allclose(identity(batch, torch.Generator()), batch, atol=1e-5)
    assert make_augment(repo_params.augment(enabled=False), [1, 8, 8], 1.0) is None


def test_resample_balances_train_only():
    labels = np.array([0] * 95 + [1] * 5)
    features = np.arange(100, dtype=np.float32)[:, None]
    over = resample((features, labels), "oversample", 0)
    under = resample((features, labels), "undersample", 0)
    assert np.bincount(over[1]).tolist() == [95, 95]
    assert np.bincount(under[1]).tolist() == [5, 5]
    assert resample((features, labels), "none", 0)[1] is labels


@pytest.mark.parametrize("model", ["mlp", "logistic_regression"])
def test_imbalance_raises_minority_recall(model):
    features, labels = make_classification(
        n_samples=2000,
        n_features=8,
        n_informative=3,
        weights=[0.95, 0.05],
        class_sep=0.6,
        flip_y=0,
        random_state=1,
    )
    schema = make_schema("classification", [0, 1])
    train, dev = split_arrays(features, labels)
    recall = {}
    for strategy in ("none", "class_weight", "oversample"):
        fitted = fit_and_score(train_params(model=model, imbalance=strategy), schema, 0, train, dev)
        recall[strategy] = fitted.dev_recall["1"]
    assert recall["class_weight"] > recall["none"]
    assert recall["oversample"] > recall["none"]


@pytest.mark.parametrize("strategy", ["none", "class_weight", "oversample", "undersample"])
def test_imbalance_strategies_on_breast_cancer(strategy):
    bunch = load_breast_cancer()
    schema = make_schema("classification", [0, 1])
    train, dev = split_arrays(bunch.data, bunch.target)
    fitted = fit_and_score(train_params(imbalance=strategy), schema, 0, train, dev)
    assert fitted.dev_scores["accuracy"] > 0.9
    assert set(fitted.dev_recall) == {"0", "1"}


@pytest.mark.parametrize("kind", ["step", "cosine", "plateau"])
def test_schedules_lower_the_learning_rate(kind):
    net = torch.nn.Linear(2, 1)
    optim = repo_params.optim(lr=0.1)
    optimizer = training.make_optimizer(net, optim)
    scheduler = training.make_scheduler(
        optimizer, repo_params.schedule(kind=kind, step_size=2, patience=1), epochs=10
    )
    for _ in range(6):
        scheduler.step(1.0) if kind == "plateau" else scheduler.step()
    assert optimizer.param_groups[0]["lr"] < 0.1


def _sgd_fit(schedule: str, epochs: int = 4) -> list[dict[str, float]]:
    """torch_loop.fit of a linear model by plain SGD (no momentum), one schedule."""
    torch.manual_seed(0)
    features = torch.randn(256, 4)
    targets = features @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(256)
    optim = repo_params.optim(optimizer="sgd", lr=0.05, momentum=0.0, weight_decay=0.0)
    loop = training.LoopConfig(
        optim=optim.model_copy(update={"epochs": epochs, "batch_size": 32}),
        stopping=repo_params.early_stopping(patience=epochs),
        schedule=repo_params.schedule(kind=schedule, step_size=1, gamma=1e-6),
    )
    net = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    data = (features, targets)
    result = training.fit(
        net, torch.nn.MSELoss(), lambda o, t: 0.0, data, data, loop, torch.Generator()
    )
    return result.history


def test_a_step_schedule_stops_the_updates_fit_makes():
    """gamma ~ 0 after epoch 1: the weights, so the losses, stop moving (not without it)."""
    plain = [row["train_loss"] for row in _sgd_fit("none")]
    stepped = [row["train_loss"] for row in _sgd_fit("step")]
    assert stepped[0] == plain[0]  # epoch 1 runs at the full lr either way
    assert abs(plain[3] - plain[2]) > 1e-3
    assert abs(stepped[3] - stepped[2]) < 1e-6


def test_no_schedule_is_none():
    net = torch.nn.Linear(2, 1)
    optimizer = training.make_optimizer(net, repo_params.optim())
    assert training.make_scheduler(optimizer, repo_params.schedule(kind="none"), 10) is None


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_optimizers_and_clipping_train(optimizer, blobs):
    schema, train, dev = blobs
    params = train_params(
        **{
            "optim.optimizer": optimizer,
            "optim.grad_clip": 1.0,
            "optim.lr": 0.01,
            "schedule.kind": "cosine",
        }
    )
    assert fit_and_score(params, schema, 0, train, dev).dev_scores["accuracy"] > 0.6


@pytest.mark.parametrize("clip", [None, 0.5])
def test_grad_clip_bounds_every_update(clip):
    """One full batch, SGD at lr 1: the update is the (clipped) gradient itself."""
    torch.manual_seed(0)
    features = torch.randn(64, 4)
    data = (features, 1000 + features.sum(1))  # far-off targets: a huge gradient
    net = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    optim = repo_params.optim(
        optimizer="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, batch_size=64, grad_clip=clip
    )
    loop = training.LoopConfig(
        optim=optim, stopping=repo_params.early_stopping(), schedule=repo_params.schedule()
    )
    before = torch.nn.utils.parameters_to_vector(net.parameters()).detach().clone()
    training.train_epoch(
        net, torch.nn.MSELoss(), training.make_optimizer(net, optim), data, loop, torch.Generator()
    )
    after = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    step = float((after - before).norm())
    if clip is None:
        assert step > 100  # what clipping has to bound
    else:
        assert step == pytest.approx(clip, rel=1e-4)


@pytest.mark.slow
def test_train_compile_trains_as_eager_does(blobs):
    """train.compile: the network runs through torch.compile (about 30 s to compile)."""
    schema, train, dev = blobs
    # no dropout: compiled code draws its random masks differently
    params = {"optim.epochs": 2, "mlp.hidden_sizes": [16], "mlp.dropout": 0.0}
    eager = fit_and_score(train_params(**params), schema, 0, train, dev)
    compiled = fit_and_score(train_params(**params, compile=True), schema, 0, train, dev)
    assert compiled.history == [pytest.approx(row, rel=1e-4) for row in eager.history]


def test_l1_penalty_shrinks_weights(blobs):
    schema, train, dev = blobs
    plain = fit_and_score(train_params(), schema, 0, train, dev).model
    sparse = fit_and_score(train_params(**{"optim.l1": 0.01}), schema, 0, train, dev).model
    assert training.l1_penalty(sparse.net) < training.l1_penalty(plain.net)


def test_best_epoch_is_reported_not_last(blobs):
    schema, train, dev = blobs
    fitted = fit_and_score(
        train_params(**{"optim.epochs": 60, "optim.lr": 0.05}), schema, 0, train, dev
    )
    best = fitted.history[fitted.best_epoch - 1]
    assert best["dev_loss"] == min(row["dev_loss"] for row in fitted.history)


def test_progress_falls_back_to_log_lines_without_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert resolve_progress("auto") == "log"
    assert resolve_progress("off") == "off"


def test_an_early_stop_closes_the_bar_at_its_epoch_with_the_reason(blobs, capsys):
    """The bar says which fit it is and ends at 100% where training stopped, not at 45%."""
    schema, train, dev = blobs
    params = train_params(**{"optim.epochs": 200, "early_stopping.patience": 2})
    fitted = fit_and_score(params, schema, 0, train, dev, progress="bar", label="seed 0 (1 of 3)")
    assert len(fitted.history) < 200  # it did stop early
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    epochs = len(fitted.history)
    assert last.startswith(f"seed 0 (1 of 3) (early stop at epoch {epochs}): 100%"), last
    assert f"{epochs}/{epochs}" in last


def test_epoch_log_lines_name_their_fit(blobs, caplog):
    schema, train, dev = blobs
    with caplog.at_level("INFO", logger="reprotrain.models.torch_loop"):
        fit_and_score(
            train_params(**{"optim.epochs": 2}), schema, 0, train, dev, progress="log", label="x"
        )
    epochs = [r.getMessage() for r in caplog.records if "epoch 1:" in r.getMessage()]
    assert epochs and epochs[0].startswith("x: epoch 1: train_loss=")


# --- stage-level: determinism and resume after a real kill -------------------------------


def stage_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def run_stage(name: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"stages.{name}"],
        cwd=cwd,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def workspace(path: Path, train: dict) -> Path:
    path.mkdir()
    params = {
        "prepare": {"source": "sklearn:digits"},
        "train": train,
        "learning_curve": {"fractions": []},
    }
    (path / "params.yaml").write_text(yaml.safe_dump(repo_params.merged(params)))
    for stage in ("prepare", "split"):
        result = run_stage(stage, path)
        assert result.returncode == 0, result.stderr
    return path


RESUME_TRAIN = {
    "model": "mlp",
    "seeds": [0],
    "progress": "log",
    "checkpoint": True,
    "mlp": {"hidden_sizes": [256]},
    "optim": {"epochs": 40},
    "early_stopping": {"patience": 100},
}


@pytest.mark.slow
def test_train_is_byte_identical_and_resumes_after_kill(tmp_path):
    reference = workspace(tmp_path / "reference", RESUME_TRAIN)
    result = run_stage("train", reference)
    assert result.returncode == 0, result.stderr
    assert not (reference / ".checkpoints/train").exists()  # removed once outputs are complete

    killed = workspace(tmp_path / "killed", RESUME_TRAIN)
    checkpoint = killed / ".checkpoints/train/seed-0.pt"
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=killed,
        env=stage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # a few epochs in
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = torch.load(checkpoint, weights_only=True)
    assert 1 <= state["epoch"] < 40, "the kill must land mid-training"

    resumed = run_stage("train", killed)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from checkpoint {checkpoint.relative_to(killed)} at epoch" in resumed.stderr

    for relative in (
        "models/model/seed-0/weights.pt",
        "metrics/train.json",
        "metrics/train_history.csv",
    ):
        assert (killed / relative).read_bytes() == (reference / relative).read_bytes(), relative
