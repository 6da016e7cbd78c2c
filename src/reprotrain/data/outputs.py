"""A stage's outputs replaced together, or not at all.

A stage writes every output into its staging folder, `.staging/<stage>/new/<output>`
(inside the project, so the moves below are renames on one filesystem). Then it writes a
journal of the moves and makes them: each output's previous version goes to
`.staging/<stage>/old/`, the new one takes its place; a declared output the run did not
write is removed. A run killed before the journal leaves the previous outputs untouched
(the next run of the stage removes its staging folder); a run killed during the moves is
completed by `recover()`, which every stage calls before it reads anything. Readers see
the previous set or the new set, never a mix of two runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from reprotrain.data import io

log = logging.getLogger(__name__)

STAGING = Path(".staging")
JOURNAL = "journal.json"


class Staged:
    """Where a stage writes each of its declared outputs until they are swapped in."""

    def __init__(self, root: Path, outputs: Iterable[Path]):
        self.root = root
        self.outputs = [Path(output) for output in outputs]

    def _staged(self, path: Path) -> Path:
        path = Path(path)
        if not any(path == out or out in path.parents for out in self.outputs):
            raise ValueError(f"{path} is not one of this stage's outputs {self.outputs}")
        return self.root / "new" / path

    def folder(self, output: Path) -> Path:
        """The staging folder standing in for the folder `output` (created)."""
        path = self._staged(output)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def path(self, output: Path) -> Path:
        """The staging path standing in for `output`, a declared output or a file inside
        one (its folder created)."""
        path = self._staged(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@contextlib.contextmanager
def replaced_together(stage: str, outputs: Iterable[Path]) -> Iterator[Staged]:
    """Write the stage's outputs through the yielded `Staged`; on success they replace the
    previous ones together. On an error nothing is replaced and the staging is removed."""
    root = STAGING / stage
    shutil.rmtree(root, ignore_errors=True)  # a run killed before its journal
    staged = Staged(root, outputs)
    try:
        yield staged
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    moves = [
        {"new": str(new), "dest": str(out), "remove": not new.exists()}
        for out, new in ((out, staged.root / "new" / out) for out in staged.outputs)
    ]
    io.write_text(root / JOURNAL, json.dumps(moves, indent=1))  # from here on: the new set
    _apply(root)


def recover() -> None:
    """Finish the swaps of every stage killed after writing its journal."""
    for journal in sorted(STAGING.glob(f"*/{JOURNAL}")):
        log.info("completing the outputs of a killed run (%s)", journal.parent)
        _apply(journal.parent)


def _apply(root: Path) -> None:
    """Make the journal's moves; each step can be repeated, so a kill anywhere in here is
    completed by running it again."""
    for move in json.loads((root / JOURNAL).read_text()):
        new, dest = Path(move["new"]), Path(move["dest"])
        if not move["remove"] and not new.exists():
            continue  # swapped in already
        if dest.exists() or dest.is_symlink():  # the previous version (or an output not rewritten)
            old = root / "old" / dest
            old.parent.mkdir(parents=True, exist_ok=True)
            _remove(old)
            os.replace(dest, old)
        if not move["remove"]:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(new, dest)
    (root / JOURNAL).unlink()
    shutil.rmtree(root, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
