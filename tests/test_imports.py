"""`prepare` and `split` never import torch or MLflow (checked in fresh interpreters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
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
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = "from stages import prepare, split\nprepare.main()\nsplit.main()"
    assert forbidden_loaded(code, tmp_path) == []
    assert (tmp_path / "data" / "split" / "test.parquet").is_file()
    assert json.loads((tmp_path / "metrics" / "split.json").read_text())["sizes"]["train"] == 90
