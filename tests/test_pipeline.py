"""dvc.yaml wiring (static) and one end-to-end `dvc repro` on a tiny config in a temporary copy."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from project_copy import commit_copy, copy_project, default_params, dvc

from stages import paths

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
    for name, stage in _dvc_stages().items():
        for dep in _entries(stage, "deps"):
            if dep.startswith("stages/"):
                assert (REPO_ROOT / dep).is_file(), f"{name}: dep {dep} does not exist"


# Modules that only talk to MLflow: no DVC output depends on them, so they are no deps.
MLFLOW_ONLY = {"tracking", "registry", "serving", "pyfunc_entry"}
# (importing module, imported module) -> the stages that never run that import, and why.
NOT_RUN = {
    ("config", "models"): ({"prepare", "split"}, "only checks train.model, which they never read"),
    ("datasets", "images"): (
        {"split", "train", "tune", "evaluate"},
        "only reads an image-folder prepare.source",
    ),
    ("train", "plots"): ({"train"}, "draws the MLflow figures"),
    ("tune", "plots"): ({"tune"}, "draws the MLflow figures"),
    ("models", "augment"): ({"evaluate"}, "only while fitting"),
    ("models", "pretrained"): ({"evaluate"}, "only while fitting from a checkpoint"),
}


def _imports(module: str) -> set[str]:
    """Modules of the package `module` imports, at the top or inside functions."""
    tree = ast.parse((REPO_ROOT / "stages" / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "stages":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stages."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("stages.")}
    return found


@pytest.mark.parametrize("stage", ["prepare", "split", "train", "tune", "evaluate"])
def test_each_stage_depends_on_every_module_it_runs(stage: str) -> None:
    """A code edit reruns every stage that runs the edited module: each module a stage's code
    deps import is a code dep too, unless it only talks to MLflow or the stage never runs it."""
    deps = _entries(_dvc_stages()[stage], "deps")
    listed = {PurePosixPath(dep).stem for dep in deps if dep.startswith("stages/")}
    for module in sorted(listed):
        for imported in sorted(_imports(module) - listed - MLFLOW_ONLY):
            skipped, why = NOT_RUN.get((module, imported), (set(), ""))
            assert stage in skipped and why, (
                f"{stage} runs stages/{module}.py, which imports {imported}: add "
                f"stages/{imported}.py to its deps in dvc.yaml (or to NOT_RUN in this test "
                "with the reason the stage never runs that import)"
            )


def test_not_run_names_only_imports_that_exist() -> None:
    for module, imported in NOT_RUN:
        assert imported in _imports(module), (module, imported)


def _paths_py() -> set[PurePosixPath]:
    """Every path constant of stages/paths.py (dict values included)."""
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
            f"dvc.yaml names {path}, which stages/paths.py does not define"
        )
    for path in constants:
        if path.parts[0] not in DATA_ROOTS:
            continue  # e.g. checkpoints: working files, not pipeline outputs
        related = any(path in other.parents or other in path.parents for other in declared)
        assert path in declared or related, (
            f"stages/paths.py defines {path}, which dvc.yaml does not declare"
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

    from stages import tracking

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

    # A code edit reruns only the stages that run the edited module.
    for module, reruns in (("report", {"evaluate"}), ("augment", {"train", "tune"})):
        with (repo / "stages" / f"{module}.py").open("a") as handle:
            handle.write("# edited\n")
        ran = set(re.findall(r"Running stage '(\w+)'", dvc(repo, "repro").stdout))
        # evaluate follows train and tune only if their outputs changed (not for a comment)
        assert reruns <= ran <= {*reruns, "evaluate"}, ran
