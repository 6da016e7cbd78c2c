"""The tune stage through its real code path, on tiny synthetic data in tmp_path.

Each test writes data/prepared/schema.json and data/split/{train,dev}.parquet (plus a
test.parquet that is garbage: the stage must never read it), a params.yaml, and runs
`stages.tune.main` in that directory with MLflow pointed at a store in tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd
import pytest
import repo_params
import servers
import yaml
from project_copy import REPO_ROOT
from servers import create_database

from reprotrain import tracking, tuning
from reprotrain.config import paths
from reprotrain.config.errors import UserError
from reprotrain.data import datasets, folds, io
from reprotrain.models.model import load_model
from stages import tune

TRAIN = {
    "model": "mlp",
    "seeds": [0],
    "device": "cpu",
    "mlp": {"hidden_sizes": [8], "dropout": 0.0},
    "optim": {"lr": 0.01, "batch_size": 16, "epochs": 6},
    "early_stopping": {"patience": 3},
}
SPACE = {
    "optim.lr": {"type": "float", "low": 0.001, "high": 0.05, "log": True},
    "mlp.dropout": {"type": "float", "low": 0.0, "high": 0.3},
}


@pytest.fixture
def tune_dir(workdir, classification_frame: pd.DataFrame):
    """`tune_dir(tune_section, train_overrides)` -> the working dir, data and params written."""

    def make(tune_section: dict[str, Any], train: dict[str, Any] | None = None) -> Path:
        root = workdir(
            {
                "base": {"seed": 0, "threads": 1},
                "train": TRAIN | (train or {}),
                "tune": {"space": SPACE} | tune_section,
            }
        )
        write_data(root, classification_frame)
        return root

    return make


def write_data(root: Path, frame: pd.DataFrame) -> None:
    schema = datasets.build_schema(frame, "label", "classification", "synthetic", None)
    schema.write(root / paths.SCHEMA)
    dev_rows = frame.index % 3 == 0
    io.write_parquet(root / paths.SPLIT_FILES["train"], frame[~dev_rows])
    io.write_parquet(root / paths.SPLIT_FILES["dev"], frame[dev_rows])
    folds.write(root / paths.FOLDS, None)  # the dev split alone
    (root / paths.SPLIT_FILES["test"]).write_bytes(b"not a parquet file: tune must not read it")


def set_params(root: Path, **tune_section: Any) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["tune"] |= tune_section
    (root / "params.yaml").write_text(yaml.safe_dump(repo_params.merged(params)))


def summary(root: Path) -> dict[str, Any]:
    return json.loads((root / paths.TUNE_METRICS).read_text())


def trials_csv(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / paths.TUNE_TRIALS)


def tune_runs() -> tuple[list[Any], list[Any]]:
    """(stage runs, trial runs) of the tune stage in the test's MLflow store, oldest first."""
    mlflow.set_tracking_uri(tracking.tracking_uri())
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    runs = sorted(runs, key=lambda run: run.info.start_time)
    stage = [
        r
        for r in runs
        if r.data.tags.get("stage") == "tune" and r.data.tags.get(tracking.RUN_KIND) == "stage"
    ]
    trials = [r for r in runs if r.data.tags.get(tracking.RUN_KIND) == "trial"]
    return stage, trials


@pytest.mark.slow
def test_outputs_mlflow_runs_and_byte_identical_reruns(tune_dir) -> None:
    root = tune_dir({"method": "tpe", "n_trials": 3, "tpe_startup_trials": 2})
    tune.main([])
    outputs = (paths.TUNE_METRICS, paths.TUNE_TRIALS, paths.TUNE_HISTORY)
    first = {path: (root / path).read_bytes() for path in outputs}
    tune.main([])
    assert first == {path: (root / path).read_bytes() for path in first}

    result = summary(root)
    assert result["method"] == "tpe" and result["metric"] == "accuracy"
    assert result["direction"] == "maximize" and result["n_trials"] == 3
    assert result["trial_states"] == {"complete": 3, "pruned": 0, "failed": 0}
    assert set(result["best_params"]) == set(SPACE)
    assert result["best_model"]["dev"]["accuracy"] == result["best_dev_score"]
    table = trials_csv(root)
    columns = ["trial", "state", "dev_score", "epochs", "last_epoch_dev_score", *SPACE]
    assert list(table.columns) == columns
    assert table["dev_score"].max() == pytest.approx(result["best_dev_score"], abs=1e-6)
    history = pd.read_csv(root / paths.TUNE_HISTORY)  # the complete trials, for the DVC plot
    assert list(history.columns) == ["trial", "dev_score", "best_so_far"]
    assert history["trial"].tolist() == table["trial"][table["state"] == "complete"].tolist()
    assert history["best_so_far"].iloc[-1] == pytest.approx(result["best_dev_score"], abs=1e-6)
    model = load_model(root / paths.TUNED_DIR)
    assert (
        len(model.predict(model.preprocessor.transform(pd.read_parquet(paths.SPLIT_FILES["dev"]))))
        == 30
    )

    stages, trials = tune_runs()
    parent = stages[-1]
    children = [t for t in trials if t.data.tags[tracking.PARENT_TAG] == parent.info.run_id]
    assert len(children) == 3
    assert {t.data.tags["state"] for t in children} == {"complete"}
    assert {t.info.status for t in children} == {"FINISHED"}
    assert sorted(int(t.data.params["trial"]) for t in children) == [0, 1, 2]
    assert all("dev_accuracy" in t.data.metrics and "optim.lr" in t.data.params for t in children)
    assert parent.data.metrics["best_dev_score"] == result["best_dev_score"]
    assert parent.data.metrics["trials_complete"] == 3
    assert set(parent.data.params) >= {f"best.{key}" for key in SPACE}
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"optimization_history.png", "tune.json", "tune_trials.csv"} <= artifacts
    # fANOVA needs dev scores that differ; tiny separable data may score 1.0 everywhere
    skipped = parent.data.tags.get("param_importance", "")
    assert "param_importances.png" in artifacts or skipped.startswith("skipped: ")


@pytest.mark.slow
def test_weak_torch_trials_are_pruned_and_logged_as_pruned(tune_dir) -> None:
    root = tune_dir(
        {
            "method": "grid",
            "n_trials": None,
            "pruner": "median",
            "prune_warmup_epochs": 1,
            "prune_startup_trials": 1,
            "space": {
                "optim.lr": {"type": "categorical", "choices": [0.05, 1.0e-7]},
                "mlp.dropout": {"type": "categorical", "choices": [0.0, 0.1, 0.2]},
            },
        },
        {"early_stopping": {"patience": 10}},
    )
    tune.main([])
    result = summary(root)
    assert result["n_trials"] == 6 and result["trial_states"]["pruned"] >= 1
    assert result["trial_states"]["failed"] == 0
    table = trials_csv(root)
    pruned = table[table["state"] == "pruned"]
    assert pruned["dev_score"].isna().all() and (pruned["epochs"] < 6).all()
    assert pruned["last_epoch_dev_score"].notna().all()  # where each stopped, for the PNG
    history = pd.read_csv(root / paths.TUNE_HISTORY)
    assert not set(history["trial"]) & set(pruned["trial"])  # no blank drawn as zero
    assert set(pruned["optim.lr"]) == {1e-7}  # only the hopeless learning rate
    _, trials = tune_runs()
    killed = [t for t in trials if t.data.tags["state"] == "pruned"]
    assert len(killed) == len(pruned)
    assert all(t.info.status == "FINISHED" for t in killed)  # stopped as planned, not crashed
    assert all({"pruned_epoch", "pruned_value"} <= set(t.data.metrics) for t in killed)


def test_model_family_is_tunable_and_sklearn_trials_run_unpruned(tune_dir) -> None:
    root = tune_dir(
        {
            "method": "grid",
            "n_trials": None,
            "pruner": "median",
            "prune_warmup_epochs": 1,
            "prune_startup_trials": 0,
            "space": {
                "model": {"type": "categorical", "choices": ["logistic_regression", "mlp"]},
                "logistic_regression.C": {"type": "categorical", "choices": [0.1, 1.0]},
            },
        }
    )
    tune.main([])
    table = trials_csv(root)
    assert len(table) == 4
    sklearn_rows = table[table["model"] == "logistic_regression"]
    assert (sklearn_rows["state"] == "complete").all() and sklearn_rows["epochs"].isna().all()
    assert (table.loc[table["model"] == "mlp", "epochs"] >= 1).all()


def test_under_cross_validation_trials_score_on_folds_and_weak_ones_stop_early(
    tune_dir, classification_frame: pd.DataFrame
) -> None:
    root = tune_dir(
        {
            "method": "grid",
            "n_trials": None,
            "metric": "log_loss",
            "pruner": "median",
            "prune_startup_trials": 1,
            "space": {
                "logistic_regression.C": {"type": "categorical", "choices": [1e-6, 10.0, 1.0]}
            },
        },
        {"model": "logistic_regression"},
    )
    dev_rows = classification_frame.index % 3 == 0
    development = pd.concat([classification_frame[~dev_rows], classification_frame[dev_rows]])
    labels = development["label"].to_numpy()
    folds.write(root / paths.FOLDS, folds.fold_codes(90, labels, 5, 1, seed=0))
    tune.main([])
    result = summary(root)
    assert result["validation"]["method"] == "cross-validation"
    assert result["validation"]["folds"] == 5
    table = trials_csv(root)
    # C 1e-6 predicts near-uniform probabilities: its running fold mean of log loss is
    # worse than the other trials' once 2 folds are done, so it stops there
    assert set(table["state"]) == {"complete", "pruned"}
    pruned = table[table["state"] == "pruned"]
    assert pruned["logistic_regression.C"].tolist() == [1e-6]
    assert pruned["epochs"].tolist() == [2]  # steps are folds
    best = result["best_model"]
    assert len(best["dev_folds"]) == 5
    mean = sum(row["log_loss"] for row in best["dev_folds"]) / 5
    assert best["dev"]["log_loss"] == pytest.approx(mean) == result["best_dev_score"]
    # out-of-fold predictions of all 90 train+dev rows, for evaluate's choice
    predictions = pd.read_csv(root / paths.DEV_ERRORS["tuned"] / paths.CV_PREDICTIONS)
    assert len(predictions) == 90
    assert (predictions["actual"].to_numpy() == labels).all()


@pytest.mark.slow
def test_log_loss_is_minimized(tune_dir) -> None:
    root = tune_dir({"method": "random", "n_trials": 3, "metric": "log_loss"})
    tune.main([])
    result = summary(root)
    assert (result["metric"], result["direction"]) == ("log_loss", "minimize")
    assert result["best_dev_score"] == pytest.approx(trials_csv(root)["dev_score"].min(), rel=1e-5)
    assert result["best_dev_score"] == result["best_model"]["dev"]["log_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite:///tune.db", "journal:///tune.journal"])
def test_rerun_with_persistent_storage_continues_the_study(tune_dir, storage: str) -> None:
    root = tune_dir({"method": "tpe", "n_trials": 2, "storage": storage})
    tune.main([])
    first = trials_csv(root)
    set_params(root, n_trials=4)
    tune.main([])
    table = trials_csv(root)
    assert list(table["trial"]) == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(table.iloc[:2], first)
    assert summary(root)["n_trials"] == 4
    stages, trials = tune_runs()
    per_parent = [
        sorted(
            int(t.data.params["trial"])
            for t in trials
            if t.data.tags[tracking.PARENT_TAG] == s.info.run_id
        )
        for s in stages
    ]
    assert per_parent == [[0, 1], [2, 3]]  # each trial logged once, by the run that ran it


@pytest.mark.slow
def test_changed_search_refuses_to_join_the_stored_study(tune_dir) -> None:
    root = tune_dir({"n_trials": 1, "storage": "sqlite:///tune.db"})
    tune.main([])
    set_params(root, n_trials=2, space={"optim.lr": SPACE["optim.lr"]})
    with pytest.raises(
        UserError,
        match=r"tune\.study_name: study 'reprotrain' in tune\.storage was made with other",
    ):
        tune.main([])


@pytest.mark.slow
def test_parallel_trials_do_not_fail(tune_dir) -> None:
    root = tune_dir(
        {
            "method": "random",
            "n_trials": 4,
            "n_jobs": 2,
            "storage": "sqlite:///tune.db",
            "pruner": "none",
        }
    )
    tune.main([])
    assert summary(root)["trial_states"] == {"complete": 4, "pruned": 0, "failed": 0}
    _, trials = tune_runs()
    assert len(trials) == 4 and {t.data.tags["state"] for t in trials} == {"complete"}


def test_a_study_where_every_trial_fails_writes_nothing(tune_dir) -> None:
    root = tune_dir(
        {
            "method": "grid",
            "n_trials": None,
            "space": {"model": {"type": "categorical", "choices": ["linear_regression"]}},
        }
    )
    with pytest.raises(
        UserError,
        match=r"^tune: none of the study's 1 trials completed; first error: trial 0: UserError: "
        r"params\.yaml: train\.model: linear_regression needs a regression task",
    ):
        tune.main([])
    assert not (root / paths.TUNE_METRICS).exists() and not (root / paths.TUNED_DIR).exists()
    _, trials = tune_runs()
    assert [(t.data.tags["state"], t.info.status) for t in trials] == [("failed", "FAILED")]


def test_worker_needs_a_shared_storage(tune_dir) -> None:
    tune_dir({"n_trials": 1})
    with pytest.raises(
        UserError,
        match=r"^params\.yaml: tune\.storage: --worker needs a shared storage .*, got null$",
    ):
        tune.main(["--worker"])


@pytest.mark.slow
def test_worker_of_a_finished_study_has_nothing_to_do(tune_dir) -> None:
    root = tune_dir({"n_trials": 2, "storage": "sqlite:///tune.db"})
    tune.main([])
    before = (root / paths.TUNE_METRICS).read_bytes()
    tune.main(["--worker", "--wait", "0"])
    study = optuna.load_study(study_name="reprotrain", storage=f"sqlite:///{root / 'tune.db'}")
    assert len(study.trials) == 2
    assert (root / paths.TUNE_METRICS).read_bytes() == before


def test_worker_without_a_coordinator_gives_up_after_wait(tune_dir) -> None:
    tune_dir({"n_trials": 2, "storage": "sqlite:///tune.db"})
    with pytest.raises(
        UserError, match=r"^--wait: no coordinator opened study 'reprotrain' within 0 s"
    ):
        tune.main(["--worker", "--wait", "0"])


# The stage runs in a fresh interpreter whose audit hook refuses (and reports) any open of
# test.parquet; the file is garbage and unreadable too, so a read through pyarrow's own I/O
# (not audited) would fail the stage as well.
NEVER_READS_TEST = textwrap.dedent(
    """
    import sys

    def refuse_test_split(event, args):
        if event == "open" and args and "test.parquet" in str(args[0]):
            sys.stderr.write(f"OPENED {args[0]}\\n")
            raise PermissionError("the tune stage must not read the test split")

    sys.addaudithook(refuse_test_split)
    sys.argv = ["stages.tune"]
    from stages import tune
    from reprotrain.config.errors import run_stage
    run_stage(tune.main)
    """
)


@pytest.mark.slow
def test_tune_never_reads_the_test_split(tune_dir) -> None:
    root = tune_dir({"method": "tpe", "n_trials": 2})
    test_file = root / paths.SPLIT_FILES["test"]
    test_file.chmod(0)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", NEVER_READS_TEST],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OPENED" not in result.stderr
    assert summary(root)["n_trials"] == 2
    test_file.chmod(0o644)
    assert test_file.read_bytes().startswith(b"not a parquet file")  # untouched


# --- many workers, one study in PostgreSQL ---------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server on 127.0.0.1 (trust auth); skips when it cannot start."""
    with servers.postgres_server() as url:
        yield url


@pytest.mark.slow
def test_workers_and_coordinator_share_one_postgres_study(
    tune_dir, postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `--worker` processes and the coordinator run one study: 8 trials, each once."""
    storage = create_database(postgres, "optuna_study")
    root = tune_dir(
        # no pruner: which trials a median pruner stops depends on the workers' timing
        {
            "method": "tpe",
            "n_trials": 8,
            "storage": storage,
            "study_name": "shared",
            "pruner": "none",
        },
        {"optim": {"lr": 0.01, "batch_size": 8, "epochs": 30}, "early_stopping": {"patience": 30}},
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "MLFLOW_TRACKING_URI": create_database(postgres, "mlflow_store").replace(
            "postgresql://", "postgresql+psycopg2://"
        ),
    }

    def stage(*args: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "stages.tune", *args]
        return subprocess.Popen(command, cwd=root, env=env, stderr=subprocess.PIPE, text=True)

    workers = [stage("--worker", "--wait", "300") for _ in range(2)]
    coordinator = stage()
    for process in (coordinator, *workers):
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]

    result = summary(root)
    assert result["n_trials"] == 8 and result["trial_states"]["complete"] == 8
    study = optuna.load_study(study_name="shared", storage=tuning.storage_url(storage))
    assert sorted(t.number for t in study.trials) == list(range(8))
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}

    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    stages, trials = tune_runs()
    assert len(stages) == 1
    assert sorted(int(t.data.params["trial"]) for t in trials) == list(range(8))  # each once
    assert all(t.data.tags[tracking.PARENT_TAG] == stages[0].info.run_id for t in trials)
    assert len({t.data.tags["worker"] for t in trials}) >= 2  # trials ran in several processes


# --- through DVC --------------------------------------------------------------------------


class _Exploit:
    """Unpickling it would run a command: what a poisoned checkpoint holds."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_refused_checkpoint_stops_tune_once_before_the_study(tune_dir, tmp_path) -> None:
    """Not one failed trial per trial: the refusal comes before any study or MLflow run."""
    import torch

    root = tune_dir(
        {"n_trials": 3},
        {"init_from": {"mode": "finetune", "path": "pretrained/evil.pt"}},
    )
    (root / "pretrained").mkdir()
    marker = tmp_path / "pwned"
    torch.save({"1.head.weight": _Exploit(marker)}, root / "pretrained" / "evil.pt")
    with pytest.raises(UserError, match=r"train\.init_from\.path: refusing to load .*evil\.pt"):
        tune.main([])
    assert not marker.exists()
    stages, trials = tune_runs()
    assert stages == [] and trials == []
