"""`python -m reprotrain.cli.check_params` (what `make repro` runs before `dvc repro`), and
the restore hint a stage adds to its error under `dvc repro`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reprotrain.config.errors import UserError, restore_hint, run_stage


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reprotrain.cli.check_params"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_valid_params_file_passes(workdir) -> None:
    done = check(workdir())
    assert done.returncode == 0, done.stderr
    assert "params.yaml: every section valid" in done.stderr


def test_a_typo_fails_in_one_line_before_dvc_removes_anything(workdir) -> None:
    root = workdir()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["model"] = "mlpp"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    done = check(root)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: params.yaml: train.model: must be one of auto, mlp, cnn, zoo, logistic_regression, "
        "linear_regression, svm, random_forest, hist_gradient_boosting, got 'mlpp'"
    ]


def test_under_dvc_a_failed_stage_says_how_to_restore(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert restore_hint() == ""
    monkeypatch.setenv("DVC_STAGE", "train")

    def main() -> None:
        raise UserError("params.yaml: train.model: ...")

    with pytest.raises(SystemExit) as exited:
        run_stage(main)
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: params.yaml: train.model: ... (dvc repro removed the previous outputs of "
        "'train' before running it: `dvc checkout train` restores them from the cache, "
        "`git checkout -- metrics/` its metrics)\n"
    )
    assert os.environ["DVC_STAGE"] == "train"
