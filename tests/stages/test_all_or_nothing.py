"""`train` and `tune` killed (os._exit, no cleanup: what SIGKILL leaves) at each moment of
writing their outputs: while writing into the staging folder, at the journal, and in the
middle of the swap. Afterwards, once the next stage has run `outputs.recover()`, every
output is from the previous run or every output is from the new one, never a mix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from project_copy import REPO_ROOT
from test_tune_stage import SPACE, TRAIN, write_data

from reprotrain.config import paths
from reprotrain.data import io, outputs

# Runs a stage's main() and dies at the os.replace whose destination is argv[2].
KILLED_STAGE = """
import os, sys
real_replace = os.replace

def replace(src, dst):
    if str(dst) == sys.argv[2]:
        os._exit(137)
    real_replace(src, dst)

os.replace = replace
import importlib
stage = importlib.import_module(f"stages.{sys.argv[1]}")
stage.main() if sys.argv[1] != "tune" else stage.main([])
"""


def run_stage(root: Path, stage: str, kill_at: str = "") -> int:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_STAGE, stage, kill_at],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 137), done.stderr[-2000:]
    return done.returncode


def digests(root: Path, stage: str) -> dict[str, str]:
    found = {}
    for output in paths.STAGE_OUTPUTS[stage]:
        path = root / output
        found[str(output)] = io.tree_digest(path) if path.is_dir() else io.file_digest(path)
    return found


def write_params(root: Path, width: int) -> None:
    """The network's width (not searched by tune): another width, other outputs."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["mlp"]["hidden_sizes"] = [width]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snapshot(root: Path, stage: str, into: Path) -> None:
    for output in paths.STAGE_OUTPUTS[stage]:
        (into / output).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (root / output).is_dir() else shutil.copy2
        copy(root / output, into / output)


def restore(snapshot_dir: Path, root: Path, stage: str) -> None:
    for output in paths.STAGE_OUTPUTS[stage]:
        target = root / output
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    snapshot(snapshot_dir, stage, root)


METRICS = {"train": paths.TRAIN_METRICS, "tune": paths.TUNE_METRICS}


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["train", "tune"])
def test_a_kill_at_any_moment_of_writing_leaves_one_whole_set(
    workdir: Any, classification_frame: Any, tmp_path_factory: pytest.TempPathFactory, stage: str
) -> None:
    root = workdir(
        {
            "base": {"seed": 0, "threads": 1},
            "train": TRAIN,
            "tune": {"space": SPACE, "n_trials": 1},
            "learning_curve": {"fractions": [0.5, 1.0]},
        }
    )
    write_data(root, classification_frame)
    write_params(root, 12)  # the new set
    assert run_stage(root, stage) == 0
    new = digests(root, stage)
    write_params(root, 8)  # the previous set
    assert run_stage(root, stage) == 0
    previous = digests(root, stage)
    assert previous[str(METRICS[stage])] != new[str(METRICS[stage])]
    saved = tmp_path_factory.mktemp("previous")
    snapshot(root, stage, saved)
    write_params(root, 12)

    metrics = METRICS[stage]
    moments = {
        str(outputs.STAGING / stage / "new" / metrics): previous,  # writing into staging
        str(outputs.STAGING / stage / outputs.JOURNAL): previous,  # the journal itself
        str(metrics): new,  # in the middle of the swap (the outputs listed before it moved)
    }
    for kill_at, expected in moments.items():
        restore(saved, root, stage)
        assert run_stage(root, stage, kill_at) == 137, kill_at
        outputs.recover()  # what the next stage does first
        assert digests(root, stage) == expected, kill_at

    # the next run of the stage removes the killed run's staging and writes a whole set
    restore(saved, root, stage)
    assert run_stage(root, stage, moments_first := next(iter(moments))) == 137
    assert (root / outputs.STAGING / stage).exists(), moments_first
    assert run_stage(root, stage) == 0
    assert digests(root, stage) == new
    assert not (root / outputs.STAGING / stage).exists()
