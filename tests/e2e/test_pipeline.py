"""The real `dvc repro` of a small configuration, end to end: outputs, MLflow runs,
byte-identical reruns (metrics, models, `dvc.lock`) that register nothing new, and which
stages an edit reruns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from plots_page import assert_offline, drawn_plots, intended_plots, show_page
from project_copy import committed_copy, dvc, small_params

from reprotrain.config import paths

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
    top = {
        run.data.tags["stage"]: run
        for run in runs
        if run.data.tags.get(tracking.RUN_KIND) == "stage"
    }
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


def _check_dvc_plots(repo: Path) -> None:
    """The page loads nothing from the network; a classification run draws the top-level
    plots but the regression ones (residuals), and no default per-file plot."""
    assert_offline(show_page(repo, repo.parent / "dvc_plots"))
    drawn = drawn_plots(repo)
    assert drawn == intended_plots(repo, "classification")
    assert "ROC on test (macro average one-vs-rest)" in drawn
    assert not any("esidual" in title or title.startswith("metrics/") for title in drawn)


def _registered(repo: Path) -> list[tuple[str, str, str]]:
    """(name, version, run id) of every version in the copy's Model Registry."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    versions = client.search_model_versions()
    return sorted((version.name, version.version, version.run_id) for version in versions)


def _last_evaluate_tags(repo: Path) -> dict[str, str]:
    return _last_evaluate_run(repo).data.tags


def _last_evaluate_run(repo: Path):
    from mlflow.tracking import MlflowClient

    from reprotrain import tracking

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.stage = 'evaluate'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0]


@pytest.mark.e2e
def test_dvc_repro_end_to_end(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit = committed_copy(repo, small_params())

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
    # the strong simple baseline (scaled logistic regression) is far above the prior on iris
    assert _value(test_scores["strong_baseline"]["accuracy"]) >= 0.8
    assert "strong_baseline" in evaluate["paired"]["against"]
    # the evaluate run opened before the work it records: before its outputs were written
    run = _last_evaluate_run(repo).info
    written_ms = (repo / paths.EVALUATE_METRICS).stat().st_mtime * 1000
    assert run.start_time < written_ms < run.end_time, (run.start_time, written_ms, run.end_time)
    tune = json.loads((repo / paths.TUNE_METRICS).read_text())
    assert tune["n_trials"] == 2
    _check_mlflow(repo, commit)
    _check_dvc_plots(repo)

    first = _metric_bytes(repo)
    lock = (repo / "dvc.lock").read_bytes()
    registered = _registered(repo)
    assert len(registered) == 1 and _last_evaluate_tags(repo)["registration"] == "new"
    dvc(repo, "repro", "--force")
    assert _metric_bytes(repo) == first
    # Every output hashed in the lock, the skops and torch model files included, has the
    # same bytes; the re-evaluated winner reuses its registered version.
    assert (repo / "dvc.lock").read_bytes() == lock
    assert _registered(repo) == registered
    again = _last_evaluate_tags(repo)
    assert (again["registration"], again["registered_version"]) == ("reused", "1")
    assert again["champion"] == "kept" and again["champion_version"] == "1"
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

    # A key tune searches (optim.lr) makes train stale, not tune: its trials would come out
    # the same. dvc.yaml lists tune's train keys one by one, all but the searched ones.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert "optim.lr" in params["tune"]["space"]
    params["train"]["optim"]["lr"] = params["train"]["optim"]["lr"] * 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = dvc(repo, "status").stdout
    assert re.findall(r"^(\w+):", status, re.MULTILINE) == ["train"], status
    assert "params.yaml" in status, status
