"""Rerun the pipeline in a clean copy of the committed tree and compare its metrics.

    python scripts/repro_check.py [--repo PATH] [--keep]      (what `make repro-check` runs)

Steps, in a temporary clone of HEAD (uncommitted changes are not part of the check):
1. `dvc status --json`: fails if `dvc.lock` is stale against the committed `dvc.yaml`, code and
   params: a changed command, a changed dep or param, a committed metric that is not the one the
   lock records, or a stage/dep/out the lock does not record. Outputs that are simply missing
   (not in a clean copy's cache) are expected.
2. `dvc repro` there, with the copy's own MLflow store (never the workspace's).
3. Every numeric leaf of the committed `metrics/*.json` is compared with the rerun within the
   tolerance of `TOLERANCES`; both sides must have the same keys.

Exit 0: reproduced; 1: stale lock or drift (a table says which); 2: the check could not run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from reprotrain import config  # noqa: E402 - the checkout's own library

REPO = Path(__file__).resolve().parents[1]
METRICS_GLOB = "metrics/*.json"
EXPECTED_IN_CLEAN_COPY = {"deleted", "not in cache"}  # outputs a fresh clone has not built yet


class CheckError(Exception):
    """The check itself could not run (not a reproducibility failure)."""


@dataclass(frozen=True)
class Tolerance:
    """`|rerun - committed| <= max(abs_tol, rel_tol * |committed|)` for leaves matching pattern."""

    pattern: str  # fnmatch over "<file>:<dotted.key.path>"
    abs_tol: float
    rel_tol: float
    enforced: bool = True
    why: str = ""
    integers_only: bool = False

    def allowed(self, committed: float) -> float:
        return max(self.abs_tol, self.rel_tol * abs(committed))

    def matches(self, key: str, committed: float) -> bool:
        if self.integers_only and not isinstance(committed, int):
            return False
        return fnmatch.fnmatchcase(key, self.pattern)

    def describe(self) -> str:
        where = f"{self.pattern} (integers)" if self.integers_only else self.pattern
        if not self.enforced:
            return f"{where}: reported, not enforced ({self.why})"
        if self.abs_tol == 0 and self.rel_tol == 0:
            return f"{where}: exact ({self.why})"
        return (
            f"{where}: |diff| <= max({self.abs_tol:g}, {self.rel_tol:g} x |committed|) ({self.why})"
        )


# First match wins. Same machine, same params: the rerun is byte-identical, so these only
# matter across machines (CI), where float rounding in BLAS kernels can move training a little.
TOLERANCES: tuple[Tolerance, ...] = (
    Tolerance(
        "tune.json:best_params.*", 0, 0, enforced=False, why="choices of the search, not scores"
    ),
    Tolerance("*best_epoch", 0, 0, enforced=False, why="epoch choice moves with float noise"),
    Tolerance("*seconds*", 0, 0, enforced=False, why="wall time"),
    Tolerance("*", 0, 0, why="counts and sizes", integers_only=True),
    Tolerance("*", 0.02, 0.02, why="floats: scores, losses, gaps"),
)


@dataclass(frozen=True)
class Row:
    """One leaf that differs between the committed metrics and the rerun."""

    key: str
    committed: Any
    rerun: Any
    status: str  # drift | missing | extra | type | not enforced | text
    allowed: float | None = None

    @property
    def fails(self) -> bool:
        return self.status in {"drift", "missing", "extra", "type"}


def leaves(tree: Mapping[str, Any]) -> dict[str, Any]:
    """{dotted path: value} of every leaf of a metrics file, list items included."""
    return config.flatten(dict(tree), lists=True)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def tolerance_for(key: str, committed: float) -> Tolerance:
    """The first rule of TOLERANCES that matches the leaf."""
    return next(rule for rule in TOLERANCES if rule.matches(key, committed))


def compare_leaf(key: str, committed: Any, rerun: Any) -> Row | None:
    """None when the rerun reproduces the committed leaf, else the Row that says how not."""
    if not is_number(committed) or not is_number(rerun):
        if is_number(committed) != is_number(rerun):
            return Row(key, committed, rerun, "type")
        if committed == rerun:
            return None
        return Row(key, committed, rerun, "text")  # strings, bools, null: shown, not enforced
    if committed == rerun or (math.isnan(committed) and math.isnan(rerun)):
        return None
    rule = tolerance_for(key, committed)
    allowed = rule.allowed(committed)
    if abs(rerun - committed) <= allowed:  # False for NaN against a number
        return None
    if not rule.enforced:
        return Row(key, committed, rerun, "not enforced")
    return Row(key, committed, rerun, "drift", allowed)


def compare_metrics(committed: Mapping[str, Any], rerun: Mapping[str, Any]) -> list[Row]:
    """Compare {file name: parsed JSON} of the commit with the rerun, leaf by leaf."""
    old = {f"{name}:{k}": v for name, tree in committed.items() for k, v in leaves(tree).items()}
    new = {f"{name}:{k}": v for name, tree in rerun.items() for k, v in leaves(tree).items()}
    rows = [Row(key, old[key], None, "missing") for key in old if key not in new]
    rows += [Row(key, None, new[key], "extra") for key in new if key not in old]
    rows += [
        row for key in old.keys() & new.keys() if (row := compare_leaf(key, old[key], new[key]))
    ]
    rows = [_unenforced(row) if not is_enforced(row.key) else row for row in rows]
    return sorted(rows, key=lambda row: (not row.fails, row.key))


def is_enforced(key: str) -> bool:
    """False under a rule that only reports (best params may even change shape)."""
    return not any(
        fnmatch.fnmatchcase(key, rule.pattern) for rule in TOLERANCES if not rule.enforced
    )


def _unenforced(row: Row) -> Row:
    return Row(row.key, row.committed, row.rerun, "not enforced")


def format_table(rows: list[Row]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.6g}" if is_number(value) else json.dumps(value)[:40]

    header = ("metric", "committed", "rerun", "|diff|", "allowed", "status")
    body = [
        (
            row.key,
            cell(row.committed),
            cell(row.rerun),
            cell(abs(row.rerun - row.committed))
            if is_number(row.committed) and is_number(row.rerun)
            else "-",
            cell(row.allowed),
            row.status,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True))
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def stale_stages(status: Mapping[str, list[Any]], lock: Mapping[str, Any]) -> list[str]:
    """Reasons why dvc.lock does not describe the committed pipeline, from `dvc status --json`.

    In a clean copy every output is missing, so "deleted" and "not in cache" are expected for
    paths the lock records; anything else (modified, new, a changed command or param, a path or
    stage the lock lacks) means the lock was not regenerated after a change. Entries of `.dvc`
    files (data tracked outside the pipeline) are not in dvc.lock; only their changes count.
    """
    locked = lock.get("stages", {})
    reasons: list[str] = []
    for stage, entries in status.items():
        tracked_file = stage.endswith(".dvc")
        if not tracked_file and stage not in locked:
            reasons.append(f"{stage}: not in dvc.lock")
            continue
        recorded = {
            item["path"]
            for kind in ("deps", "outs")
            for item in locked.get(stage, {}).get(kind, [])
        }
        for entry in entries:
            if isinstance(entry, str):
                if entry != "always changed":
                    reasons.append(f"{stage}: {entry}")
                continue
            for kind, changes in entry.items():
                for path, change in changes.items():
                    if isinstance(change, Mapping):  # a params file: {key: modified|new|deleted}
                        for param, what in change.items():
                            reasons.append(f"{stage}: param {param} in {path} {what}")
                    elif change not in EXPECTED_IN_CLEAN_COPY:
                        reasons.append(f"{stage}: {kind} {path} {change}")
                    elif not tracked_file and path not in recorded:
                        reasons.append(f"{stage}: {kind} {path} not recorded in dvc.lock")
    return reasons


def run(cmd: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    """Run a command; return its stdout, or raise CheckError with its last stderr line."""
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    except OSError as exc:
        raise CheckError(f"{cmd[0]}: {exc.strerror}") from exc
    if done.returncode != 0:
        last = ((done.stderr + done.stdout).strip().splitlines() or ["(no output)"])[-1]
        raise CheckError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {last}")
    return done.stdout


def clean_copy(repo: Path, dest: Path) -> str:
    """Clone the repository's HEAD into dest; return the commit."""
    commit = run(["git", "rev-parse", "HEAD"], repo).strip()
    run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(repo), str(dest)], repo)
    run(["git", "checkout", "--quiet", "--detach", commit], dest)
    return commit


def copy_env(copy: Path) -> dict[str, str]:
    """Environment for the rerun: the venv's python first, the copy's own MLflow store."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "DVC_EXP_")) and key != "DVC_ROOT"
    }
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{copy / 'mlflow.db'}"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def read_metrics(root: Path) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for path in sorted(root.glob(METRICS_GLOB)):
        try:
            metrics[path.name] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckError(f"{path.relative_to(root)}: not valid JSON ({exc.msg})") from exc
    return metrics


def dvc_bin() -> str:
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else "dvc"


def check_lock(copy: Path, env: Mapping[str, str]) -> list[str]:
    status = json.loads(run([dvc_bin(), "status", "--json"], copy, env) or "{}")
    lock_file = copy / "dvc.lock"
    lock = yaml.safe_load(lock_file.read_text()) if lock_file.exists() else {}
    return stale_stages(status, lock or {})


def reproduce(copy: Path, env: Mapping[str, str]) -> None:
    print(f"repro-check: running `dvc repro` in {copy} (the whole pipeline)", flush=True)
    start = time.monotonic()
    done = subprocess.run([dvc_bin(), "repro"], cwd=copy, env=env, check=False)
    if done.returncode != 0:
        raise CheckError(
            f"`dvc repro` failed in the clean copy (exit {done.returncode}); its output is above;"
            " rerun with --keep to inspect the copy"
        )
    print(f"repro-check: pipeline reproduced in {time.monotonic() - start:.0f} s")


def check(repo: Path, workdir: Path) -> int:
    copy = workdir / "repo"
    commit = clean_copy(repo, copy)
    env = copy_env(copy)
    print(f"repro-check: commit {commit[:12]} cloned to {copy}")

    stale = check_lock(copy, env)
    if stale:
        print("repro-check: dvc.lock is stale against the committed code and params:")
        print("\n".join(f"  {reason}" for reason in stale))
        print(
            "error: dvc.lock: stale; run `dvc repro` and commit dvc.lock and metrics/",
            file=sys.stderr,
        )
        return 1
    print("repro-check: dvc.lock matches the committed dvc.yaml, code and params")

    committed = read_metrics(copy)
    if not committed:
        raise CheckError(f"{METRICS_GLOB}: no committed metrics to compare")
    reproduce(copy, env)
    rows = compare_metrics(committed, read_metrics(copy))

    print("repro-check: tolerances (first match wins, keys are <file>:<path>):")
    print("\n".join(f"  {rule.describe()}" for rule in TOLERANCES))
    n_leaves = sum(len(leaves(tree)) for tree in committed.values())
    if rows:
        print(format_table(rows))
        print("(drift, missing, extra, type: fail; text and not enforced: shown only)")
    failed = [row for row in rows if row.fails]
    if failed:
        print(
            f"error: metrics: {len(failed)} of {n_leaves} values differ beyond tolerance",
            file=sys.stderr,
        )
        return 1
    print(f"repro-check: ok, {n_leaves} values in {len(committed)} files reproduced")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="repository (default: this one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="repro-check-"))
    try:
        return check(args.repo.resolve(), workdir)
    except CheckError as exc:
        print(f"error: repro-check: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"repro-check: copy kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
