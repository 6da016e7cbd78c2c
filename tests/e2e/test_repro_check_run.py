"""scripts/repro_check.py run for real on a tiny DVC repository: it passes, then catches
drift and a stale lock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    """A committed two-stage pipeline whose metric comes from params.yaml."""
    repo = tmp_path / "tiny"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "init", "-q"], cwd=repo, check=True)
    (repo / "params.yaml").write_text("score: 0.5\n")
    (repo / "make.py").write_text(
        "import json, pathlib, yaml\n"
        "score = yaml.safe_load(open('params.yaml'))['score']\n"
        "pathlib.Path('metrics').mkdir(exist_ok=True)\n"
        "pathlib.Path('a.txt').write_text('a')\n"
        "json.dump({'score': score, 'n': 3}, open('metrics/m.json', 'w'))\n"
    )
    (repo / "dvc.yaml").write_text(
        "stages:\n"
        "  make:\n"
        "    cmd: python make.py\n"
        "    deps: [make.py]\n"
        "    params: [score]\n"
        "    outs: [a.txt]\n"
        "    metrics:\n"
        "      - metrics/m.json:\n"
        "          cache: false\n"
        "  copy:\n"
        "    cmd: cp a.txt b.txt\n"
        "    deps: [a.txt]\n"
        "    outs: [b.txt]\n"
    )
    subprocess.run([dvc, "repro", "-q"], cwd=repo, check=True)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "pipeline")
    return repo


@pytest.mark.e2e
def test_check_passes_then_catches_drift_and_a_stale_lock(rc, tiny_repo, capsys):
    assert rc.main(["--repo", str(tiny_repo)]) == 0
    assert "ok, 2 values in 1 files reproduced" in capsys.readouterr().out

    # A hand-edited metric that the lock also records: the lock is fresh, the rerun drifts.
    (tiny_repo / "metrics" / "m.json").write_text(json.dumps({"score": 0.9, "n": 3}))
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "commit", "-fq"], cwd=tiny_repo)
    git(tiny_repo, "commit", "-qam", "hand-edited metric")
    assert rc.main(["--repo", str(tiny_repo)]) == 1
    captured = capsys.readouterr()
    assert "m.json:score  0.9        0.5    0.4     0.02     drift" in captured.out
    assert "error: metrics: 1 of 2 values differ beyond tolerance" in captured.err

    (tiny_repo / "params.yaml").write_text("score: 0.7\n")
    git(tiny_repo, "commit", "-qam", "param changed, lock not regenerated")
    assert rc.main(["--repo", str(tiny_repo)]) == 1
    captured = capsys.readouterr()
    assert "make: param score in params.yaml modified" in captured.out
    assert captured.err.startswith("error: dvc.lock: stale")
