"""End to end on a regression dataset (sklearn:diabetes, tiny config) with a plain `dvc repro`.

Checks what evaluate adds: scores with intervals, the verdicts, the learning curve, the
plot tables and PNGs, the report, the DVC plots HTML, MLflow inputs and the Model Registry
(the champion loads with `mlflow.pyfunc.load_model` and predicts new rows). The browser
check (marked `ui`, run by `make ui-check`) opens the same store in headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from plots_page import assert_offline, drawn_plots, embedded_specs, intended_plots, show_page
from project_copy import REPO_ROOT, committed_copy, dvc, pipeline_env
from repo_params import merge

from reprotrain.config import paths

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TINY = {
    "base": {"seed": 0, "threads": 1},
    "prepare": {"source": "sklearn:diabetes", "target": None, "task": "auto"},
    "train": {
        "model": "mlp",
        "seeds": [0, 1],
        "device": "cpu",
        "mlp": {"hidden_sizes": [16], "dropout": 0.0},
        "augment": {"enabled": False},
        "optim": {"epochs": 4, "batch_size": 64, "lr": 0.01},
    },
    "tune": {
        "method": "tpe",
        "n_trials": 2,
        "space": {"optim.lr": {"type": "float", "low": 0.003, "high": 0.03, "log": True}},
    },
    "learning_curve": {"fractions": [0.5, 1.0]},
    "evaluate": {"bootstrap": {"n_resamples": 200}},
}


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the project run once with `dvc repro` on sklearn:diabetes."""
    repo = tmp_path_factory.mktemp("diabetes") / "repo"
    committed_copy(repo, merge(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()), TINY))
    result = dvc(repo, "repro")
    return {"repo": repo, "stdout": result.stdout + result.stderr}


def _read_json(repo: Path, path: Path) -> dict[str, Any]:
    return json.loads((repo / path).read_text())


@pytest.mark.e2e
def test_regression_scores_have_intervals_and_verdicts(diabetes: dict[str, Any]) -> None:
    repo = diabetes["repo"]
    assert "fit verdict (" in diabetes["stdout"]
    summary = _read_json(repo, paths.EVALUATE_METRICS)
    assert summary["task"] == "regression" and summary["primary_metric"] == "r2"
    for model in ("baseline", "tuned"):
        for metric in ("rmse", "mae", "r2"):
            score = summary["test"][model][metric]
            assert score["ci_low"] <= score["value"] <= score["ci_high"], (model, metric)
    assert set(summary["test"]["model"]["seeds"]) == {"seed-0", "seed-1"}
    assert set(summary["test"]["model"]["mean"]["rmse"]) == {"mean", "std"}
    assert summary["test"]["baseline"]["r2"]["value"] <= 0.0  # the mean predicts nothing
    assert summary["fit"]["model"]["verdict"] in {"overfitting", "underfitting", "good fit"}
    assert summary["learning_curve"]["verdict"] in {
        "more data likely helps",
        "more data unlikely to help much",
    }
    assert "per_class" not in summary
    curve = (repo / paths.LEARNING_CURVE).read_text().splitlines()
    assert curve[0] == "fraction,n_train,train_score,dev_score" and len(curve) == 3


@pytest.mark.e2e
def test_regression_plots_report_and_dvc_html(diabetes: dict[str, Any]) -> None:
    repo = diabetes["repo"]
    plots_dir = repo / paths.PLOTS_DIR
    n_test = _read_json(repo, paths.EVALUATE_METRICS)["n_test"]
    residuals = (plots_dir / "residuals.csv").read_text().splitlines()
    assert residuals[0] == "actual,predicted,residual" and len(residuals) == n_test + 1
    assert (plots_dir / "roc.csv").read_text().strip() == "fpr,tpr,chance"  # n/a: header only
    images = {path.name for path in plots_dir.glob("*.png")}
    assert images == {
        "predicted_vs_actual.png",
        "residuals.png",
        "loss_curves.png",
        "learning_curve.png",
        "tuning_history.png",
    }
    report = (repo / paths.REPORT).read_text()
    assert "| rmse (lower is better) |" in report and "## Fit diagnosis" in report
    for image in images:
        assert f"](plots/{image})" in report
    # the selected model's dev error analysis (written by train or tune) and the split's
    # leakage audit: diabetes has no leaking column
    selected = _read_json(repo, paths.EVALUATE_METRICS)["selected"]["model"]
    assert (repo / paths.DEV_ERRORS[selected] / "slices.csv").is_file()
    assert "## Errors on dev (" in report and "### Largest residuals" in report
    assert "### Weakest slices (dev mae, 95% bootstrap CI" in report
    assert "## Leakage audit (split)" in report
    assert "- Target leak (one feature alone, dev r2; all features" in report
    assert "none; best single features `bmi`" in report
    comparisons = _read_json(repo, paths.EVALUATE_METRICS)["paired"]
    alternatives = {"baseline", "strong_baseline", "tuned", "model"}
    assert set(comparisons["against"]) == alternatives - {selected}
    assert "## Paired comparisons on test (95% paired bootstrap CI" in report

    html = show_page(repo, repo.parent / "html")
    for title in ("Residuals on test", "Predicted vs actual on test", "Learning curve"):
        assert title in html
    assert_offline(html)
    # a regression run draws no ROC, precision-recall, calibration or confusion plot, and
    # no default per-file plot of a stage's CSV
    drawn = drawn_plots(repo)
    assert drawn == intended_plots(repo, "regression")
    assert not any("ROC" in title or "Calibration" in title for title in drawn)
    assert sum(embedded_specs(html).values()) == len(drawn)


@pytest.mark.e2e
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"
)
def test_dvc_plots_page_renders_offline_in_chromium(diabetes: dict[str, Any]) -> None:
    """The page draws every plot with data from the inlined builds (no network here), and
    nothing for the plots that do not apply (no lone actions button)."""
    repo = diabetes["repo"]
    page = repo.parent / "page"
    show_page(repo, page)
    command = [str(CHROMIUM), *CHROMIUM_FLAGS, "--virtual-time-budget=10000", "--dump-dom"]
    dom = subprocess.run(
        [*command, (page / "index.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    drawn = drawn_plots(repo)
    assert dom.count('class="vega-embed') == len(drawn)
    assert dom.count("<canvas") == len(drawn)  # vega-embed's default renderer
    ids = set(re.findall(r'<div id="([^"]+)"', dom))
    assert {"Residuals_on_test__predicted_-_actual_", "Loss_per_epoch__first_seed_"} <= ids
    assert not any(div.startswith(("ROC", "Calibration", "Confusion")) for div in ids)


@pytest.mark.e2e
def test_inputs_and_registered_champion(diabetes: dict[str, Any]) -> None:
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from reprotrain import tracking

    repo = diabetes["repo"]
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    top = {r.data.tags["stage"]: r for r in runs if r.data.tags.get(tracking.RUN_KIND) == "stage"}
    stages = {"train": {"train", "dev"}, "tune": {"train", "dev"}, "evaluate": {"dev", "test"}}
    for stage, splits in stages.items():
        inputs = top[stage].inputs.dataset_inputs
        assert {i.dataset.name for i in inputs} == {f"diabetes-{s}" for s in splits}, stage
        for item in inputs:
            split = item.dataset.name.removeprefix("diabetes-")
            assert item.dataset.digest == tracking.split_digest(repo / paths.SPLIT_FILES[split])

    evaluate = top["evaluate"]
    assert evaluate.data.tags["champion"] == "moved"  # first run: no champion yet
    assert "test_tuned_r2_ci_low" in evaluate.data.metrics
    artifacts = {item.path for item in client.list_artifacts(evaluate.info.run_id)}
    assert {"residuals.png", "report.md", "evaluate.json", "plots"} <= artifacts

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model("models:/reprotrain-diabetes@champion")
    rows = pd.read_parquet(repo / paths.SPLIT_FILES["test"]).drop(columns=["target"]).head(3)
    predicted = model.predict(rows + 0.001)  # rows no split has seen
    assert list(predicted.columns) == ["prediction"] and len(predicted) == 3


# --- the MLflow UI in a real browser ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow server exited early"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow server not healthy at {url} after {seconds}s")


@pytest.fixture
def mlflow_server(diabetes: dict[str, Any], tmp_path: Path):
    """`mlflow server` on 127.0.0.1 (a free port) over the pipeline's store."""
    repo = diabetes["repo"]
    port = _free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{repo / 'mlflow.db'}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with (tmp_path / "mlflow-server.log").open("w") as log:
        server = subprocess.Popen(
            command,
            cwd=repo,
            env=pipeline_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", server)
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its workers
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)


SCREENSHOTS = REPO_ROOT / "build" / "ui-check"  # git-ignored: look at them after make ui-check


@pytest.mark.ui
def test_mlflow_ui_compares_two_experiments(
    diabetes: dict[str, Any], mlflow_server: str, tmp_path: Path
) -> None:
    """The UI as a user meets it after `dvc repro` and one `dvc exp run -S ...`: the runs
    list in model-training mode, one row per pipeline execution, each named so the two
    are told apart; their comparison shows the changed param beside the test score; the
    tune run shows its best score."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from mlflow.tracking import MlflowClient

    from reprotrain import tracking

    repo = diabetes["repo"]
    ran = dvc(repo, "exp", "run", "--temp", "-S", "train.optim.lr=0.003")
    experiment_name = ran.stdout.split("Ran experiment(s):")[-1].split()[0]
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    executions = [r for r in runs if r.data.tags.get(tracking.RUN_KIND) == "pipeline"]
    names = sorted(r.info.run_name for r in executions)
    assert len(executions) == 2 and experiment_name in names, names
    for execution in executions:  # every stage run sits under its execution
        stages = [
            r.data.tags["stage"]
            for r in runs
            if r.data.tags.get(tracking.PARENT_TAG) == execution.info.run_id
        ]
        # the lr experiment reruns train and evaluate only: tune searches optim.lr itself
        expected = (
            ["evaluate", "train"]
            if execution.info.run_name == experiment_name
            else [
                "evaluate",
                "train",
                "tune",
            ]
        )
        assert sorted(stages) == expected, (execution.info.run_name, stages)
        assert execution.data.metrics["test_r2"] == pytest.approx(
            next(
                r.data.metrics["test_r2"]
                for r in runs
                if r.data.tags.get(tracking.PARENT_TAG) == execution.info.run_id
                and r.data.tags["stage"] == "evaluate"
            )
        )
    assert {r.data.params["train.optim.lr"] for r in executions} == {"0.003", "0.01"}
    tune = next(
        r
        for r in runs
        if r.data.tags.get(tracking.RUN_KIND) == "stage" and r.data.tags["stage"] == "tune"
    )
    best = f"{tune.data.metrics['best_dev_score']:.4f}"[:5]  # shown with more digits
    ids = ",".join(f'"{r.info.run_id}"' for r in executions)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1600, "height": 1000},
        )
        try:
            page = browser.new_page()
            # the link `make ui` and docs/tracking.md give: the UI in its model-training mode
            # opens the experiment on its runs (not on GenAI traces)
            page.goto(
                f"{mlflow_server}/#/experiments/{experiment.experiment_id}"
                "?workflowType=machine_learning"
            )
            page.get_by_text("Run Name", exact=True).first.wait_for(timeout=90_000)
            for name in names:
                page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
            assert page.get_by_text("Detect Issues in Your Traces").count() == 0
            page.screenshot(path=str(SCREENSHOTS / "runs.png"))

            compare = f'#/compare-runs?runs=[{ids}]&experiments=["{experiment.experiment_id}"]'
            page.goto(f"{mlflow_server}/{compare}")
            page.get_by_text("train.optim.lr", exact=True).first.wait_for(timeout=90_000)
            page.get_by_text("test_r2", exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(SCREENSHOTS / "compare.png"))

            page.goto(
                f"{mlflow_server}/#/experiments/{experiment.experiment_id}/runs/{tune.info.run_id}"
            )
            page.get_by_text("best_dev_score", exact=True).first.wait_for(timeout=90_000)
            page.get_by_text(best).first.wait_for(timeout=30_000)
            page.screenshot(path=str(SCREENSHOTS / "tune-run.png"), full_page=True)
        finally:
            browser.close()
    for shot in ("runs.png", "compare.png", "tune-run.png"):
        assert (SCREENSHOTS / shot).stat().st_size > 10_000
