"""dvc.yaml wiring (static) and one end-to-end `dvc repro` on a tiny config in a temporary copy."""

from __future__ import annotations

import ast
import functools
from pathlib import Path, PurePosixPath
from typing import Any

import grimp
import pytest
import yaml
from project_copy import REPO_ROOT, dvc

from reprotrain.config import paths

TEST_SPLIT = PurePosixPath(paths.SPLIT_FILES["test"].as_posix())
DATA_ROOTS = ("data", "models", "metrics")


def _dvc_stages() -> dict[str, dict[str, Any]]:
    with (REPO_ROOT / "dvc.yaml").open() as handle:
        return yaml.safe_load(handle)["stages"]


def _entries(stage: dict[str, Any], kind: str) -> list[str]:
    """Paths under deps/outs/metrics/plots; entries may be plain or {path: options}."""
    result = []
    for entry in stage.get(kind, []):
        result += [entry] if isinstance(entry, str) else list(entry)
    return result


def _module_file(cmd: str) -> str:
    words = cmd.split()
    assert words[:2] == ["python", "-m"], f"cmd should run a module: {cmd!r}"
    return words[2].replace(".", "/") + ".py"


def _covers(dep: str, target: PurePosixPath) -> bool:
    """Whether depending on `dep` means reading `target` (the file itself or a folder above it)."""
    dep_path = PurePosixPath(dep.rstrip("/"))
    return dep_path == target or dep_path in target.parents


def test_only_evaluate_depends_on_the_test_split() -> None:
    stages = _dvc_stages()
    readers = {
        name
        for name, stage in stages.items()
        if any(_covers(dep, TEST_SPLIT) for dep in _entries(stage, "deps"))
    }
    assert readers == {"evaluate"}


def test_covers_catches_folder_dependencies() -> None:
    assert _covers("data/split", TEST_SPLIT)
    assert _covers("data/split/", TEST_SPLIT)
    assert _covers("data", TEST_SPLIT)
    assert not _covers("data/split/dev.parquet", TEST_SPLIT)
    assert not _covers("data/prepared", TEST_SPLIT)


def test_each_stage_depends_on_its_own_module() -> None:
    for name, stage in _dvc_stages().items():
        module = _module_file(stage["cmd"])
        assert (REPO_ROOT / module).is_file(), f"{name}: {module} does not exist"
        assert module in _entries(stage, "deps"), f"{name}: {module} missing from deps"


def test_code_deps_exist() -> None:
    """A code dep is a stage script or a library package folder."""
    for name in _dvc_stages():
        for dep in _code_deps(name):
            path = REPO_ROOT / dep
            if path.is_dir():
                assert (path / "__init__.py").is_file(), f"{name}: dep {dep} is no package"
            else:
                assert path.is_file() and path.suffix == ".py", f"{name}: dep {dep} does not exist"


def test_dvc_ignores_bytecode_inside_folder_deps() -> None:
    """Python writes __pycache__ into the folders it imports from: were DVC to hash it, a run
    would change the folder deps and their stages would never be up to date."""
    folders = sorted(
        {dep for stage in _dvc_stages() for dep in _code_deps(stage) if (REPO_ROOT / dep).is_dir()}
    )
    assert folders
    probes = [f"{folder}/__pycache__/probe.cpython-311.pyc" for folder in folders]
    assert dvc(REPO_ROOT, "check-ignore", *probes).stdout.split() == probes


# Packages whose code changes no output: never DVC code deps, and what only they import is
# not run by the stage for its outputs. tracking talks to MLflow; cli is predict.
NOT_DEPS = ("reprotrain.tracking", "reprotrain.cli")
# stages/__init__.py sets memory-allocator defaults and puts src/ on sys.path: it changes no
# output, so editing it reruns nothing.
STAGES_PACKAGE = "stages"
STAGE_NAMES = ["prepare", "split", "train", "tune", "evaluate"]
LIBRARY = "reprotrain"


@functools.cache
def _import_graph() -> grimp.ImportGraph:
    """Every import of stages/ and the library, those inside functions included (grimp)."""
    return grimp.build_graph(STAGES_PACKAGE, LIBRARY)


def _runs(stage: str) -> set[str]:
    """Modules the stage's script reaches through imports, not going through NOT_DEPS."""
    graph = _import_graph()
    seen, todo = set(), [f"{STAGES_PACKAGE}.{stage}"]
    while todo:
        module = todo.pop()
        if module in seen or module.startswith(NOT_DEPS):
            continue
        seen.add(module)
        todo += graph.find_modules_directly_imported_by(module)
    return seen


def _dep_of(module: str) -> str | None:
    """The dvc.yaml entry that covers a module: its stage script, or its library package's
    folder (one entry per package; the library's own __init__.py alone)."""
    parts = module.split(".")
    if parts[0] == STAGES_PACKAGE:
        return f"stages/{parts[1]}.py" if len(parts) > 1 else None
    if len(parts) == 1:
        return "src/reprotrain/__init__.py"
    return f"src/reprotrain/{parts[1]}"


def _code_deps(stage: str) -> list[str]:
    return [
        dep for dep in _entries(_dvc_stages()[stage], "deps") if dep.startswith(("stages/", "src/"))
    ]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_code_deps_are_the_packages_the_stage_runs(stage: str) -> None:
    """An edit reruns exactly the stages that run the edited code: a stage's code deps in
    dvc.yaml are its script and the library packages its imports reach, no more, no less."""
    needed = {dep for module in _runs(stage) if (dep := _dep_of(module))}
    declared = set(_code_deps(stage))
    assert declared - needed == set(), f"{stage}: dvc.yaml lists deps it never runs"
    assert needed - declared == set(), f"{stage}: add these to its deps in dvc.yaml"


def test_mlflow_only_packages_are_no_deps() -> None:
    for stage in STAGE_NAMES:
        for dep in _code_deps(stage):
            assert not dep.replace("src/", "").replace("/", ".").startswith(NOT_DEPS), (stage, dep)


def test_library_root_holds_no_code() -> None:
    """src/reprotrain/__init__.py runs with every library import, yet no stage lists it: it
    may hold a docstring and nothing else, so an edit of it can change no output."""
    tree = ast.parse((REPO_ROOT / "src/reprotrain/__init__.py").read_text())
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr), "code in __init__.py"


def test_runs_follows_lazy_imports_but_not_tracking() -> None:
    train = _runs("train")
    assert "reprotrain.models.torch_loop" in train  # imported inside a function
    assert not any(module.startswith("reprotrain.tracking") for module in train)
    assert "reprotrain.tuning.search" not in train


def _paths_py() -> set[PurePosixPath]:
    """Every path constant of src/reprotrain/config/paths.py (dict values included)."""
    found: set[PurePosixPath] = set()
    for value in vars(paths).values():
        values = value.values() if isinstance(value, dict) else [value]
        found |= {PurePosixPath(v.as_posix()) for v in values if isinstance(v, Path)}
    return found


def _declared() -> set[PurePosixPath]:
    """Every data, model and metrics path dvc.yaml names."""
    declared = set()
    for stage in _dvc_stages().values():
        for kind in ("deps", "outs", "metrics", "plots"):
            declared |= {
                PurePosixPath(entry.rstrip("/"))
                for entry in _entries(stage, kind)
                if entry.split("/")[0] in DATA_ROOTS
            }
    return declared


def test_only_the_top_level_plots_are_drawn() -> None:
    """A stage-level `plots:` entry is drawn as a default per-file plot of every column."""
    assert not [name for name, stage in _dvc_stages().items() if "plots" in stage]
    with (REPO_ROOT / "dvc.yaml").open() as handle:
        plots = yaml.safe_load(handle)["plots"]
    files = {file for entry in plots for plot in entry.values() for file in plot["y"]}
    assert paths.TUNE_HISTORY.as_posix() in files  # complete trials only
    assert paths.TUNE_TRIALS.as_posix() not in files  # blank dev scores would draw as zeros
    for table in paths.PLOT_TABLES:
        assert (paths.PLOTS_DIR / f"{table}.csv").as_posix() in files


def test_dvc_yaml_paths_match_paths_py() -> None:
    constants = _paths_py()
    declared = _declared()
    # Folders like data/split or metrics/plots; not the roots, which would match anything.
    folders = {path for path in constants if len(path.parts) > 1}
    for path in declared:
        assert path in constants or any(folder in path.parents for folder in folders), (
            f"dvc.yaml names {path}, which src/reprotrain/config/paths.py does not define"
        )
    for path in constants:
        if path.parts[0] not in DATA_ROOTS:
            continue  # e.g. checkpoints: working files, not pipeline outputs
        related = any(path in other.parents or other in path.parents for other in declared)
        assert path in declared or related, (
            f"src/reprotrain/config/paths.py defines {path}, which dvc.yaml does not declare"
        )


# --- end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize("stage", sorted(paths.STAGE_OUTPUTS))
def test_the_outputs_replaced_together_are_the_declared_ones(stage: str) -> None:
    """data/outputs.py swaps in exactly what dvc.yaml declares (outs, metrics, plots)."""
    declared = {
        PurePosixPath(entry)
        for kind in ("outs", "metrics", "plots")
        for entry in _entries(_dvc_stages()[stage], kind)
    }
    assert {PurePosixPath(path) for path in paths.STAGE_OUTPUTS[stage]} == declared
