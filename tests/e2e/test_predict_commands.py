"""The stage commands and the predict CLI as subprocesses on a mixed CSV (text, bool and
date columns with gaps)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import repo_params
from frames import customers, new_rows
from project_copy import REPO_ROOT

from reprotrain.data import io


@pytest.mark.e2e
def test_stage_commands_end_to_end_on_mixed_csv(tmp_path: Path) -> None:
    """prepare, split and train as commands on text/bool/date columns with gaps (MLflow
    logs the model with a signature from such data), then predict from the saved model."""
    import os
    import subprocess
    import sys

    import yaml

    repo = REPO_ROOT
    params = {
        "prepare": {"source": "customers.csv", "target": "label"},
        "split": {"time_column": "signup"},
        "features": {"scale": "standard", "exclude": ["visits"]},
        "train": {"model": "logistic_regression", "seeds": [0], "device": "cpu"},
        "learning_curve": {"fractions": []},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params.merged(params)))
    customers().to_csv(tmp_path / "customers.csv", index=False)
    new_rows(6).to_csv(tmp_path / "new.csv", index=False)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    commands = [
        ["stages.prepare"],
        ["stages.split"],
        ["stages.train"],
        ["reprotrain.cli.predict", "--model", "models/model/seed-0", "--input", "new.csv"]
        + ["--output", "out.parquet"],
    ]
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
    split_metrics = io.read_json(tmp_path / "metrics" / "split.json")
    assert split_metrics["method"] == "time"
    saved = io.read_json(tmp_path / "models" / "model" / "seed-0" / "schema.json")
    assert saved["preprocessing"]["dropped"].keys() == {"email"}
    assert "visits" not in saved["preprocessing"]["columns"]
    result = pd.read_parquet(tmp_path / "out.parquet")
    assert list(result.columns) == ["prediction", "proba_churn", "proba_stay"] and len(result) == 6
