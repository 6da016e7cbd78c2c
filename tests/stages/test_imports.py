"""`prepare` and `split` never import torch or MLflow (checked in fresh interpreters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import repo_params
import yaml
from project_copy import REPO_ROOT

FORBIDDEN = ("torch", "mlflow")

REPORT_MODULES = (
    f"import json, sys\nprint(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
)


def forbidden_loaded(code: str, cwd: Path) -> list[str]:
    """Run `code` in a fresh interpreter; the forbidden packages it left in sys.modules."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code + "\n" + REPORT_MODULES],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["stages.prepare", "stages.split"])
def test_importing_a_data_stage_loads_neither_torch_nor_mlflow(module: str) -> None:
    assert forbidden_loaded(f"import {module}", REPO_ROOT) == []


def test_running_prepare_and_split_loads_neither_torch_nor_mlflow(tmp_path: Path) -> None:
    # Lazy imports inside main() count too: run both stages for real on a small bundled set.
    params = {
        "prepare": {"source": "sklearn:iris"},
        "split": {"train": 0.6, "dev": 0.2, "test": 0.2},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params.merged(params)))
    code = "from stages import prepare, split\nprepare.main()\nsplit.main()"
    assert forbidden_loaded(code, tmp_path) == []
    assert (tmp_path / "data" / "split" / "test.parquet").is_file()
    assert json.loads((tmp_path / "metrics" / "split.json").read_text())["sizes"]["train"] == 90


def test_training_a_scikit_learn_model_needs_no_torch() -> None:
    # torch costs a process a few hundred MB: `train` loads it only for a torch model.
    code = (
        "from stages import train\n"
        "from reprotrain import config\n"
        "from reprotrain.training.fitting import configure_torch\n"
        "(base,) = config.load('base')\n"
        "configure_torch(base, 'hist_gradient_boosting')"
    )
    assert forbidden_loaded(code, REPO_ROOT) == []


@pytest.mark.skipif(sys.platform != "linux", reason="jemalloc ships in Linux pyarrow wheels")
def test_arrow_allocates_with_jemalloc_once_stages_is_imported_first() -> None:
    """The Parquet reader's own buffers too: mimalloc would keep ~100 MB of them."""
    code = (
        "import stages, pyarrow as pa\n"
        "print(pa.default_memory_pool().backend_name)\n"
        "from numpy._core import multiarray\n"
        "print(multiarray._get_madvise_hugepage())"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ARROW_DEFAULT_MEMORY_POOL", "NUMPY_MADVISE_HUGEPAGE")
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["jemalloc", "False"]
