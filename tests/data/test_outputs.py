"""A stage's outputs are replaced together: killed at any moment, the folder holds the
previous set or (after `recover`) the new set, never a mix of two runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reprotrain.data import outputs

OUTPUTS = [Path("models/baseline"), Path("models/model"), Path("metrics/train.json")]


def write_set(root: Path, version: str) -> None:
    for folder in ("models/baseline", "models/model/seed-0"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "weights.pt").write_text(version)
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics/train.json").write_text(version)


def read_set(root: Path) -> set[str]:
    """The versions the outputs hold ({'old'}, {'new'}, or a mix)."""
    return {
        (root / path).read_text()
        for path in (
            "models/baseline/weights.pt",
            "models/model/seed-0/weights.pt",
            "metrics/train.json",
        )
    }


# Writes the new set through replaced_together and dies (os._exit: no cleanup, like
# SIGKILL) at the k-th rename of the run; k past the last rename: the run completes.
KILLED_RUN = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from reprotrain.data import outputs

    kill_at, calls = int(sys.argv[1]), [0]
    real_replace = os.replace

    def replace(src, dst):
        calls[0] += 1
        if calls[0] == kill_at:
            os._exit(137)
        real_replace(src, dst)

    os.replace = replace
    paths = [Path("models/baseline"), Path("models/model"), Path("metrics/train.json")]
    with outputs.replaced_together("train", paths) as staged:
        for folder in (staged.folder(paths[0]), staged.folder(paths[1]) / "seed-0"):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "weights.pt").write_text("new")
        staged.path(paths[2]).write_text("new")
    """
)


def run_killed(root: Path, kill_at: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(kill_at)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(Path(outputs.__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode


# rename 1 writes the journal (atomic_path), then two per output: old away, new in
RENAMES = 1 + 2 * len(OUTPUTS)


@pytest.mark.parametrize("kill_at", range(1, RENAMES + 2))
def test_a_kill_at_any_rename_leaves_one_whole_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_at: int
) -> None:
    write_set(tmp_path, "old")
    code = run_killed(tmp_path, kill_at)
    assert code == (137 if kill_at <= RENAMES else 0)
    monkeypatch.chdir(tmp_path)
    before_recovery = read_set(tmp_path) if kill_at == 1 else None
    outputs.recover()  # what the next stage does first
    expected = {"old"} if kill_at == 1 else {"new"}  # before the journal: nothing replaced
    assert read_set(tmp_path) == expected
    if before_recovery is not None:
        assert before_recovery == {"old"}
    with outputs.replaced_together("train", OUTPUTS):  # the next run of the stage
        pass
    assert not (tmp_path / outputs.STAGING / "train").exists()  # no leftovers


def test_an_output_the_run_did_not_write_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_set(tmp_path, "old")
    with outputs.replaced_together("train", OUTPUTS) as staged:
        staged.path(OUTPUTS[2]).write_text("new")
    assert (tmp_path / "metrics/train.json").read_text() == "new"
    assert not (tmp_path / "models/baseline").exists()  # not a stale file of another run


def test_a_failed_run_replaces_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_set(tmp_path, "old")
    with pytest.raises(RuntimeError), outputs.replaced_together("train", OUTPUTS) as staged:
        staged.path(OUTPUTS[2]).write_text("new")
        raise RuntimeError("the stage failed half-way")
    assert read_set(tmp_path) == {"old"}
    assert not (tmp_path / outputs.STAGING).joinpath("train").exists()


def test_only_declared_outputs_are_staged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with (
        pytest.raises(ValueError, match="not one of this stage's outputs"),
        outputs.replaced_together("train", OUTPUTS) as staged,
    ):
        staged.path(Path("metrics/other.json"))
