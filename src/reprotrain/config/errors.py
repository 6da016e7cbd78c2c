"""User-facing errors: one line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def brief(values: Any, shown: int = 8) -> str:
    """A list for a one-line message: whole when short, else its size and first items,
    `3000 values, e.g. ['a', 'b', ...]`."""
    values = list(values)
    if len(values) <= shown:
        return repr(values)
    head = ", ".join(repr(value) for value in values[:shown])
    return f"{len(values)} values, e.g. [{head}, ...]"


class UserError(Exception):
    """A problem the user can fix (params, data, files); shown as one line."""


def restore_hint() -> str:
    """Under `dvc repro` (DVC sets DVC_STAGE), DVC has removed the stage's outputs before
    running it: say how to get the last ones back. Empty when run directly."""
    stage = os.environ.get("DVC_STAGE")
    if not stage:
        return ""
    return (
        f" (dvc repro removed the previous outputs of {stage!r} before running it: "
        f"`dvc checkout {stage}` restores them from the cache, `git checkout -- metrics/` "
        "its metrics)"
    )


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); turn a UserError into one line and exit status 2."""
    # In a log file or CI (not a terminal) each line says when it was written.
    stamp = "" if sys.stderr.isatty() else "%(asctime)s "
    logging.basicConfig(level=logging.INFO, format=stamp + "%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}{restore_hint()}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
