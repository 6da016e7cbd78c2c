"""scripts/tracking_server.sh refuses a missing or wrong setting in one line, exit 2, with
no password in it (the server itself runs in tests/e2e/test_scale_out.py)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from project_copy import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "tracking_server.sh"
STORE = "postgresql://team:pw-secret-1@db.example.org:5432/mlflow"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, r"MLFLOW_BACKEND_STORE_URI is not set; allowed: postgresql://"),
        (
            {"MLFLOW_BACKEND_STORE_URI": "sqlite:///pw-secret-1.db"},
            r"MLFLOW_BACKEND_STORE_URI must start with postgresql:// \(a team store\), got sqlite://",
        ),
        (
            {"MLFLOW_BACKEND_STORE_URI": STORE},
            r"MLFLOW_ARTIFACTS_DESTINATION is not set; allowed: s3://",
        ),
        (
            {"MLFLOW_BACKEND_STORE_URI": STORE, "MLFLOW_ARTIFACTS_DESTINATION": "/srv/artifacts"},
            r"MLFLOW_ARTIFACTS_DESTINATION must start with s3://, got '/srv/artifacts'",
        ),
    ],
    ids=["no-store", "not-postgres", "no-bucket", "not-s3"],
)
def test_a_wrong_setting_is_one_line_without_the_password(
    settings: dict[str, str], message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | settings
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and done.stdout == "", done.stderr
    assert lines[0].startswith("tracking_server.sh: ")
    assert re.search(message, lines[0]), lines[0]
    assert "pw-secret-1" not in done.stderr
