"""The `dvc plots show` page of a finished pipeline copy, for the end-to-end tests: which
plots it draws (against the ones dvc.yaml declares for the task) and that it loads no
script from the network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from project_copy import REPO_ROOT, dvc

VENDOR = REPO_ROOT / "plots" / "vendor"
# The evaluate tables only one task fills; the other task writes them header-only.
TASK_TABLES = {
    "classification": {"confusion", "roc", "precision_recall", "calibration"},
    "regression": {"residuals"},
}


def declared_plots(repo: Path) -> dict[str, set[str]]:
    """Top-level plot title -> the files it reads, from the copy's dvc.yaml."""
    plots = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    return {title: set(definition["y"]) for entry in plots for title, definition in entry.items()}


def intended_plots(repo: Path, task: str) -> set[str]:
    """The plots a run of `task` should draw: all but those of the other task's tables."""
    (other_task,) = set(TASK_TABLES) - {task}
    other = {f"metrics/plots/{name}.csv" for name in TASK_TABLES[other_task]}
    return {title for title, files in declared_plots(repo).items() if not files & other}


def drawn_plots(repo: Path) -> set[str]:
    """Titles of the plots `dvc plots show` has data for (an empty table draws nothing)."""
    shown = json.loads(dvc(repo, "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown["errors"]
    return {title for title, renderers in shown["data"].items() if renderers}


def show_page(repo: Path, out: Path) -> str:
    """The page `dvc plots show -o out` writes, outside the copy (as a user may)."""
    dvc(repo, "plots", "show", "-o", str(out))
    return (out / "index.html").read_text(encoding="utf8")


def assert_offline(page: str) -> None:
    """No <script src>, no URL in a script tag; the vendored builds are inlined."""
    tags = re.findall(r"<script\b[^>]*>", page, re.I)
    assert tags, "no script at all"
    assert not [tag for tag in tags if re.search(r"\bsrc\s*=|https?://", tag, re.I)], tags
    assert "cdn.jsdelivr.net" not in page
    for build in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js"):
        assert (VENDOR / build).read_text(encoding="utf8") in page, f"{build} not inlined"


def embedded_specs(page: str) -> dict[str, bool]:
    """Plot div id -> whether dvc embedded a spec with data (`var spec = {};`: none)."""
    pattern = r'<div id = "([^"]+)">\s*<script type = "text/javascript">\s*var spec = (\{\}|\{)'
    return {div: opening != "{}" for div, opening in re.findall(pattern, page)}
