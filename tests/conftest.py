"""Shared fixtures: tiny synthetic frames, a params.yaml working dir, an isolated MLflow store."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import repo_params
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

# One torch/OpenMP thread, set before any test imports torch: tiny tensors gain nothing from
# more, and on a shared CPU spinning worker threads make them 10-20x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def classification_frame() -> pd.DataFrame:
    """90 rows, 3 numeric features, 3 well-separated integer classes in column `label`."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 4.0]])
    features = centers[labels] + rng.normal(scale=0.5, size=(90, 3))
    frame = pd.DataFrame(features, columns=["f0", "f1", "f2"])
    frame["label"] = labels
    return frame


@pytest.fixture
def regression_frame() -> pd.DataFrame:
    """80 rows, 3 numeric features, a float target `y` linear in them plus a little noise."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(80, 3))
    frame = pd.DataFrame(features, columns=["x0", "x1", "x2"])
    frame["y"] = features @ np.array([1.5, -2.0, 0.5]) + 3.0 + rng.normal(scale=0.1, size=80)
    return frame


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """chdir into tmp_path and write params.yaml there: the repository's params.yaml with
    the keys given merged in, `workdir({"split": {...}})`.

    Stages read params.yaml and every data path relative to the working directory.
    """

    def make(params: dict[str, Any] | None = None) -> Path:
        monkeypatch.chdir(tmp_path)
        text = yaml.safe_dump(repo_params.merged(params or {}), sort_keys=False)
        (tmp_path / "params.yaml").write_text(text)
        return tmp_path

    return make


@pytest.fixture(autouse=True)
def mlflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point MLflow at a SQLite store in tmp_path so no test writes to the repo's mlflow.db.

    `mlflow.set_registry_uri` (called by some tests) exports MLFLOW_REGISTRY_URI itself,
    behind monkeypatch's back: clear it and MLflow's global after each test, so it cannot
    send a later test's pipeline subprocess to this test's store.
    """
    from mlflow.tracking._model_registry import utils as registry_utils

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    yield uri
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    registry_utils._registry_uri = None


@pytest.fixture(scope="module")
def rc():
    """scripts/repro_check.py, imported as a module."""
    spec = importlib.util.spec_from_file_location(
        "repro_check", REPO_ROOT / "scripts" / "repro_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["repro_check"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module
