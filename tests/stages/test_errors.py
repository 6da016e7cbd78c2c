"""A user error in any stage: one line on stderr, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import repo_params
import yaml
from project_copy import REPO_ROOT

from reprotrain.config.errors import UserError, run_stage

CASES = [
    pytest.param(
        "prepare",
        {"prepare": {"task": "ranking"}},
        r"error: params\.yaml: prepare\.task: Input should be 'auto', 'classification' or "
        r"'regression', got 'ranking'",
        id="prepare-bad-task",
    ),
    pytest.param(
        "prepare",
        {"prepare": {"source": "sklearn:mnist"}},
        r"error: params\.yaml: prepare\.source: unknown dataset 'sklearn:mnist'; allowed: ",
        id="prepare-unknown-dataset",
    ),
    pytest.param(
        "prepare",
        {"prepare": {"source": "data/raw/missing.csv", "target": "y"}},
        r"error: data/raw/missing\.csv: data file not found",
        id="prepare-missing-file",
    ),
    pytest.param(
        "split",
        {"split": {"train": 0.5, "dev": 0.2, "test": 0.2}},
        r"error: params\.yaml: split: train \+ dev \+ test must sum to 1, got ",
        id="split-fractions",
    ),
    pytest.param(
        "split",
        {"spilt": {"train": 0.6}},
        r"error: params\.yaml: unknown section 'spilt'; allowed: base, prepare, split",
        id="split-unknown-section",
    ),
    pytest.param(
        "train",
        {"train": {"model": "gpt9"}},
        r"error: params\.yaml: train\.model: must be one of auto, mlp, .*, got 'gpt9'",
        id="train-unknown-model",
    ),
    pytest.param(
        "train",
        {"train": {"optim": {"lr": "fast"}}},
        r"error: params\.yaml: train\.optim\.lr: Input should be a valid number, got 'fast'",
        id="train-wrong-type",
    ),
    pytest.param(
        "tune",
        {"tune": {"space": {"optim.learning_rate": {"type": "float", "low": 0.1, "high": 1}}}},
        r"error: params\.yaml: tune\.space: 'optim\.learning_rate' is not a train "
        r"hyperparameter; valid: ",
        id="tune-space-key",
    ),
    pytest.param(
        "tune",
        {"tune": {"n_trials": 0}},
        r"error: params\.yaml: tune\.n_trials: Input should be greater than or equal to 1, got 0",
        id="tune-out-of-range",
    ),
    pytest.param(
        "evaluate",
        {"evaluate": {"overfit_gap": 2}},
        r"error: params\.yaml: evaluate\.overfit_gap: Input should be less than or equal to 1, "
        r"got 2",
        id="evaluate-out-of-range",
    ),
]


# The first case of each stage runs the real command in a subprocess; the others call the
# stage's main() in-process through the same run_stage wrapper (exit status and stderr alike).
AS_COMMAND = {"prepare-bad-task", "split-fractions", "train-unknown-model", "tune-space-key"}
AS_COMMAND |= {"evaluate-out-of-range"}
AS_MARKED = [  # the commands are slow (a fresh interpreter each)
    pytest.param(
        *case.values, id=case.id, marks=[pytest.mark.slow] if case.id in AS_COMMAND else []
    )
    for case in CASES
]


@pytest.mark.parametrize(("stage", "params", "message"), AS_MARKED)
def test_stage_user_error_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    stage: str,
    params: dict,
    message: str,
) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params.merged(params)))
    if request.node.callspec.id in AS_COMMAND:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run(
            [sys.executable, "-m", f"stages.{stage}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        code, stdout, stderr = result.returncode, result.stdout, result.stderr
    else:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "argv", [f"stages.{stage}"])
        with pytest.raises(SystemExit) as caught:
            run_stage(importlib.import_module(f"stages.{stage}").main)
        code, (stdout, stderr) = caught.value.code, capsys.readouterr()
    lines = stderr.splitlines()
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert re.match(message, lines[0]), lines[0]
    assert stdout == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == ["params.yaml"]


def test_run_stage_turns_user_error_into_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def main() -> None:
        raise UserError("params.yaml: base.seed: must be >= 0, got -1")

    with pytest.raises(SystemExit) as caught:
        run_stage(main)
    assert caught.value.code == 2
    assert capsys.readouterr().err == "error: params.yaml: base.seed: must be >= 0, got -1\n"


def test_run_stage_lets_bugs_raise() -> None:
    def main() -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_stage(main)
