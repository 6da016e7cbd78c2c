"""dvc.yaml wiring (static) and one end-to-end `dvc repro` on a tiny config in a temporary copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

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


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "space":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _small_params() -> dict[str, Any]:
    """Every section with its defaults from stages/config.py (DVC needs each key it tracks),
    overridden by SMALL_PARAMS."""
    from stages import config

    defaults = {name: model().model_dump(mode="json") for name, model in config.SECTIONS.items()}
    params = _merge(defaults, SMALL_PARAMS)
    for name, raw in params.items():
        config.parse_section(name, raw)
    return params


def _copy_tracked_files(destination: Path) -> None:
    """Tracked files plus new ones git does not ignore: the tree a commit of the work would hold."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # tracked but deleted in the working tree: skip
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def _pipeline_env() -> dict[str, str]:
    """The user's environment with no tracking override: the store defaults to <copy>/mlflow.db."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT", "DVC_EXP_NAME"}
        and not key.startswith("PYTEST_")
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    dvc = Path(sys.executable).parent / "dvc"
    result = subprocess.run(
        [str(dvc if dvc.exists() else "dvc"), *args],
        cwd=repo,
        env=_pipeline_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


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
    _copy_tracked_files(repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(_small_params(), sort_keys=False))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "copy")
    commit = _git(repo, "rev-parse", "HEAD")

    result = _dvc(repo, "repro")
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
    _dvc(repo, "repro", "--force")
    assert _metric_bytes(repo) == first
    assert _dvc(repo, "status").stdout.strip().endswith("up to date.")
