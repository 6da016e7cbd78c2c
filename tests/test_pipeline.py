"""dvc.yaml wiring (static) and one end-to-end `dvc repro` on a tiny config in a temporary copy."""

from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import grimp
import pytest
import yaml
from project_copy import commit_copy, copy_project, default_params, dvc

from reprotrain.config import paths

REPO_ROOT = Path(__file__).resolve().parent.parent
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
STAGE_OUTPUTS = [
    paths.PREPARED_DATA,
    paths.SCHEMA,
    *paths.SPLIT_FILES.values(),
    paths.BASELINE_DIR,
    paths.seed_dir(paths.MODEL_DIR, 0),
    paths.TUNED_DIR,
    paths.TRAIN_METRICS,
    paths.TRAIN_HISTORY,
    paths.TUNE_METRICS,
    paths.TUNE_TRIALS,
    paths.EVALUATE_METRICS,
]


def _small_params() -> dict[str, Any]:
    return default_params(SMALL_PARAMS)


def _metric_bytes(repo: Path) -> dict[str, bytes]:
    metrics_dir = repo / paths.METRICS_DIR
    return {
        path.relative_to(repo).as_posix(): path.read_bytes()
        for path in sorted(metrics_dir.rglob("*"))
        if path.suffix in (".json", ".csv")
    }


def _value(score: float | dict[str, float]) -> float:
    """A test score, bare or with its bootstrap interval ({value, ci_low, ci_high})."""
    return score["value"] if isinstance(score, dict) else score


def _check_mlflow(repo: Path, commit: str) -> None:
    from mlflow.tracking import MlflowClient

    from reprotrain import tracking

    assert (repo / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    assert experiment is not None
    assert experiment.artifact_location == (repo.resolve() / "mlartifacts").as_uri()
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    top = {run.data.tags["stage"]: run for run in runs if tracking.PARENT_TAG not in run.data.tags}
    assert {"train", "tune", "evaluate"} <= set(top)
    assert all(run.data.tags["git_commit"] == commit for run in runs)
    assert all(run.info.status == "FINISHED" for run in top.values())

    assert top["train"].data.params["train.optim.epochs"] == "5"
    seed_runs = [
        r for r in runs if r.data.tags.get(tracking.PARENT_TAG) == top["train"].info.run_id
    ]
    assert [r.info.run_name for r in seed_runs] == ["seed-0"]
    dev_loss = client.get_metric_history(seed_runs[0].info.run_id, "dev_loss")
    assert sorted(metric.step for metric in dev_loss) == [1, 2, 3, 4, 5]  # per-epoch metrics

    trials = [r for r in runs if r.data.tags.get(tracking.PARENT_TAG) == top["tune"].info.run_id]
    assert len(trials) == 2
    assert all(r.data.tags["stage"] == "tune" and "dev_accuracy" in r.data.metrics for r in trials)
    assert "best_dev_score" in top["tune"].data.metrics

    evaluate = top["evaluate"]
    assert {"test_baseline_accuracy", "test_tuned_accuracy"} <= set(evaluate.data.metrics)
    assert evaluate.data.tags["fit_verdict"] in {"overfitting", "underfitting", "good fit"}
    artifacts = {item.path for item in client.list_artifacts(evaluate.info.run_id)}
    assert "confusion_matrix.png" in artifacts


@pytest.mark.e2e
def test_dvc_repro_end_to_end(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_project(repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(_small_params(), sort_keys=False))
    commit = commit_copy(repo)

    result = dvc(repo, "repro")
    assert "fit verdict" in result.stdout

    for output in STAGE_OUTPUTS:
        assert (repo / output).exists(), f"{output} missing after dvc repro"
    evaluate = json.loads((repo / paths.EVALUATE_METRICS).read_text())
    assert evaluate["primary_metric"] == "accuracy"
    test_scores = evaluate["test"]
    assert 0 <= _value(test_scores["baseline"]["accuracy"]) <= 0.5  # iris: 3 balanced classes
    assert 0 <= test_scores["model"]["mean"]["accuracy"]["mean"] <= 1
    assert 0 <= _value(test_scores["tuned"]["accuracy"]) <= 1
    tune = json.loads((repo / paths.TUNE_METRICS).read_text())
    assert tune["n_trials"] == 2
    _check_mlflow(repo, commit)

    first = _metric_bytes(repo)
    dvc(repo, "repro", "--force")
    assert _metric_bytes(repo) == first
    assert dvc(repo, "status").stdout.strip().endswith("up to date.")

    # A code edit reruns only the stages whose deps hold the edited package; an edit of
    # tracking (MLflow only) reruns nothing.
    edits = (
        ("src/reprotrain/reporting/report.py", {"evaluate"}),
        ("src/reprotrain/models/augment.py", {"train", "tune", "evaluate"}),
        ("src/reprotrain/tracking/runs.py", set()),
    )
    for module, reruns in edits:
        with (repo / module).open("a") as handle:
            handle.write("# edited\n")
        ran = set(re.findall(r"Running stage '(\w+)'", dvc(repo, "repro").stdout))
        # evaluate follows train and tune only if their outputs changed (not for a comment)
        assert reruns <= ran <= ({*reruns, "evaluate"} if reruns else set()), (module, ran)
