"""The end-to-end tests' project copy: the work tree in a temporary folder, committed to a
fresh git repository, driven with git and dvc as a user drives it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DVC = Path(sys.executable).parent / "dvc"


def copy_project(destination: Path) -> None:
    """Tracked files plus new ones git does not ignore: the tree a commit of the work would hold."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, check=True, timeout=60)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # tracked but deleted in the working tree: skip
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def pipeline_env() -> dict[str, str]:
    """The user's environment with no tracking override: the store defaults to <copy>/mlflow.db."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT", "DVC_EXP_NAME"}
        and not key.startswith("PYTEST_")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def run(
    repo: Path, *command: str, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in the copy (`env`: added to the user's environment); a non-zero exit
    fails the test with its output."""
    result = subprocess.run(
        list(command),
        cwd=repo,
        env={**pipeline_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    return run(repo, "git", *identity, *args).stdout.strip()


def dvc(
    repo: Path, *args: str, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run(repo, str(DVC if DVC.exists() else "dvc"), *args, timeout=timeout, env=env)


def commit_copy(repo: Path) -> str:
    """Make the copy a git repository with one commit; return its hash."""
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "copy")
    return git(repo, "rev-parse", "HEAD")


def committed_copy(repo: Path, params: dict[str, Any]) -> str:
    """The project copied to `repo` with `params` as its params.yaml, committed: what a user
    has after cloning and editing params.yaml. Returns the commit."""
    import yaml

    copy_project(repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return commit_copy(repo)


def default_params(overrides: dict[str, Any]) -> dict[str, Any]:
    """The repository's params.yaml with `overrides` merged in, every section validated."""
    from repo_params import everything

    return everything(overrides)


SMALL_PARAMS = {
    "base": {"seed": 0, "threads": 1},
    "prepare": {"source": "sklearn:iris", "target": None, "task": "auto"},
    "train": {
        "model": "mlp",
        "seeds": [0],
        "device": "cpu",
        "mlp": {"hidden_sizes": [16]},
        "optim": {"epochs": 5, "batch_size": 32},
        "early_stopping": {"patience": 10},
        "progress": "off",
    },
    "tune": {
        "method": "tpe",
        "n_trials": 2,
        "space": {"optim.lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True}},
    },
    "learning_curve": {"fractions": [0.5, 1.0]},
    "evaluate": {"bootstrap": {"n_resamples": 100}},
}


def small_params() -> dict[str, Any]:
    """A configuration of every stage small enough for an end-to-end `dvc repro` in tests."""
    return default_params(SMALL_PARAMS)
