"""The one place that talks to MLflow.

Default store: `sqlite:///<root>/mlflow.db` with artifacts in `<root>/mlartifacts`, where
<root> is `DVC_ROOT` (set by DVC, pointing at the workspace also for `dvc exp run --temp`
and queued runs) or this repository. `MLFLOW_TRACKING_URI` overrides the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.types import Schema as MlflowSchema

from reprotrain import config
from reprotrain.config.errors import UserError
from reprotrain.config.secrets import redact
from reprotrain.data.schema import Schema

log = logging.getLogger(__name__)

EXPERIMENT = "reprotrain"
# The library's folder: logged with every model (MLflow code_paths) so that a registered
# model loads with the code that wrote it.
PACKAGE_DIR = Path(__file__).resolve().parent.parent
PARENT_TAG = "mlflow.parentRunId"
# The UI opens an experiment of this kind on its training runs (not on GenAI traces).
EXPERIMENT_KIND, MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"
EXPERIMENT_TAGS = {EXPERIMENT_KIND: MODEL_DEVELOPMENT}
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
PREDICT_TIMEOUT_S = 600  # a registered model predicting on the test set, in its own process
RETRIES = 8  # attempts of a store call while the database is busy (SQLite: 'locked')
# Tuning trials log from several threads: one MLflow call at a time per process keeps a
# SQLite store from answering 'database is locked' (other processes: retried with backoff).
_CLIENT_LOCK = threading.RLock()


def repo_root() -> Path:
    """The project the stages run in: DVC's root (also under `dvc exp run --temp` and queued
    runs, which work in a copy), else the working directory (stages run from the root)."""
    root = os.environ.get("DVC_ROOT")
    return Path(root).resolve() if root else Path.cwd()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def shown_tracking_uri() -> str:
    """The store's URI for messages: a password in it (a database URI, or a server's basic
    auth in the URL) replaced by ***."""
    from reprotrain.tuning.search import redact

    return redact(tracking_uri())


def setup() -> str:
    """Point MLflow at the store and experiment; return the experiment id."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Read before set_tracking_uri, which exports MLFLOW_TRACKING_URI itself.
    default_store = not os.environ.get("MLFLOW_TRACKING_URI")
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    with store_creation_lock(uri):  # the first client creates a new store's tables
        client = MlflowClient()
        experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = (repo_root() / "mlartifacts").as_uri() if default_store else None
        # a parallel worker may create it meanwhile: then it is read below
        with contextlib.suppress(mlflow.exceptions.MlflowException):
            client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise UserError(
                f"MLflow: experiment {name!r} could not be created in {shown_tracking_uri()}"
            )
    if experiment.tags.get(EXPERIMENT_KIND) != MODEL_DEVELOPMENT:  # a store made before
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, MODEL_DEVELOPMENT)
    return experiment.experiment_id


def store_creation_lock(uri: str) -> contextlib.AbstractContextManager[Any]:
    """A file lock beside a SQLite store (`mlflow.db.lock`): processes starting together on
    a new store (queue workers, torchrun ranks, tune workers) would otherwise race through
    MLflow's migrations ("table ... already exists"). Other stores need none."""
    from filelock import FileLock

    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return contextlib.nullcontext()
    return FileLock(uri[len(prefix) :] + ".lock", timeout=300)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=repo_root(),
            check=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_tags(stage: str) -> dict[str, str]:
    tags = {"stage": stage, "git_commit": git_commit(), "mlflow.source.git.commit": git_commit()}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


# --- one pipeline execution: a parent run over its stage runs ----------------------------

PIPELINE_TAG = "pipeline"  # on the parent run and every stage run under it: its label
PIPELINE_STAGE = "pipeline"  # the parent's `stage` tag
# What a run is: "pipeline" (one execution), "stage", "seed" (train) or "trial" (tune).
RUN_KIND = "run_kind"


def pipeline_label() -> str:
    """What one pipeline execution is called: the DVC experiment's name under `dvc exp run`
    (a queued or temp run included), else the commit and a digest of params.yaml, the same
    for every stage of one `dvc repro` and new when a param changes."""
    name = os.environ.get("DVC_EXP_NAME")
    if name:
        return name
    params = config.PARAMS_FILE
    digest = hashlib.sha256(params.read_bytes()).hexdigest()[:6] if params.is_file() else "none"
    return f"{git_commit()[:7]} params {digest}"


def pipeline_run(experiment_id: str, label: str) -> str:
    """The parent run of the execution `label`: found by its tag, or opened with every
    param of params.yaml, so two executions compare param by param."""
    found = client_call(
        "search_runs",
        [experiment_id],
        filter_string=f"tags.{PIPELINE_TAG} = '{label}' and tags.stage = '{PIPELINE_STAGE}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    if found:
        return found[0].info.run_id
    tags = {
        **run_tags(PIPELINE_STAGE),
        PIPELINE_TAG: label,
        RUN_KIND: "pipeline",
        "mlflow.runName": label,
    }
    run = client_call("create_run", experiment_id, tags=tags, run_name=label)
    log_params(run.info.run_id, params_file())
    return run.info.run_id


def params_file() -> dict[str, Any]:
    """Every param of params.yaml (none outside a project), URLs without their passwords."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        return redact(value) if isinstance(value, str) and "://" in value else value

    return clean(config.read_params()) if config.PARAMS_FILE.is_file() else {}


@contextlib.contextmanager
def stage_run(stage: str, params: dict[str, Any]) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run for one stage, nested under its execution's parent run (named
    `<stage> · <label>`), tagged, with its params logged. Opened when the stage starts;
    the parent shows RUNNING while a stage runs, then how the last stage ended."""
    experiment_id = setup()
    label = pipeline_label()
    parent = pipeline_run(experiment_id, label)
    tags = {**run_tags(stage), PIPELINE_TAG: label, PARENT_TAG: parent, RUN_KIND: "stage"}
    client_call("update_run", parent, status="RUNNING")
    status = "FAILED"
    try:
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"{stage} · {label}", tags=tags
        ) as run:
            log_params(run.info.run_id, params)
            try:
                yield run
            finally:  # a failed stage's epochs, logged asynchronously, still reach the store
                flush()
        status = "FINISHED"
    finally:
        end_run(parent, status)


def flatten(params: dict[str, Any]) -> dict[str, str]:
    """Nested params as MLflow params: {'train.optim.lr': '0.001'}."""
    return {name: str(value) for name, value in config.flatten(params).items()}


def flat_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Numeric leaves of a nested summary as MLflow metrics: {'model_dev_accuracy_mean': 0.97}."""
    return {
        name: float(value)
        for name, value in config.flatten(summary, "_").items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def log_params(run_id: str, params: dict[str, Any]) -> None:
    entries = [Param(key, value[:6000]) for key, value in flatten(params).items()]
    for start in range(0, len(entries), 100):
        client_call("log_batch", run_id, params=entries[start : start + 100])


def log_metrics(run_id: str, values: dict[str, float], step: int = 0) -> None:
    """Many metrics in as few calls as MLflow allows."""
    now = int(time.time() * 1000)
    entries = [Metric(key, float(value), now, step) for key, value in values.items()]
    _log_metric_entries(run_id, entries)


def log_history(run_id: str, history: list[dict[str, float]]) -> None:
    """Per-epoch rows as metric series with step = epoch, in batches."""
    now = int(time.time() * 1000)
    entries = [
        Metric(key, float(value), now, int(row["epoch"]))
        for row in history
        for key, value in row.items()
        if key != "epoch"
    ]
    _log_metric_entries(run_id, entries)


def log_epoch(run_id: str, row: dict[str, float]) -> None:
    """One epoch's history row as it happens, without waiting for the store (MLflow's
    async logging); `flush` (at the end of `stage_run`) waits for what is queued."""
    now, step = int(time.time() * 1000), int(row["epoch"])
    entries = [Metric(key, float(value), now, step) for key, value in row.items() if key != "epoch"]
    client_call("log_batch", run_id, metrics=entries, synchronous=False)


def flush() -> None:
    """Wait until every asynchronously logged metric is in the store."""
    with _CLIENT_LOCK:
        mlflow.flush_async_logging()


def client_call(method: str, *args: Any, **kwargs: Any) -> Any:
    """One MlflowClient call: serialized across threads, retried while the store is busy."""
    from mlflow.exceptions import MlflowException

    for attempt in range(RETRIES):
        try:
            with _CLIENT_LOCK:
                return getattr(MlflowClient(), method)(*args, **kwargs)
        except MlflowException as exc:
            if exc.error_code != "TEMPORARILY_UNAVAILABLE" or attempt == RETRIES - 1:
                raise
            log.warning("MLflow store busy (%s); retrying", str(exc).splitlines()[0][:80])
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _log_metric_entries(run_id: str, entries: list[Metric]) -> None:
    for start in range(0, len(entries), MAX_BATCH):
        client_call("log_batch", run_id, metrics=entries[start : start + MAX_BATCH])


def child_run(parent_run_id: str, name: str, stage: str, tags: dict[str, str] | None = None) -> str:
    """A nested run under `parent_run_id`, safe from worker threads and processes."""
    parent = client_call("get_run", parent_run_id)
    all_tags = {
        **run_tags(stage),
        **{k: v for k, v in parent.data.tags.items() if k == PIPELINE_TAG},
        PARENT_TAG: parent_run_id,
        "mlflow.runName": name,
        **(tags or {}),
    }
    run = client_call("create_run", parent.info.experiment_id, tags=all_tags, run_name=name)
    return run.info.run_id


def run_status(run_id: str) -> str | None:
    """RUNNING, FINISHED, FAILED or KILLED; None when the store has no such run."""
    from mlflow.exceptions import MlflowException

    try:
        return client_call("get_run", run_id).info.status
    except MlflowException:
        return None


def end_run(run_id: str, status: str = "FINISHED") -> None:
    """Mark the run ended. Its streamed epochs may still be queued: `stage_run` flushes
    them once when the stage ends (each flush restarts MLflow's logging threads, ~2 s)."""
    client_call("set_terminated", run_id, status=status)


def set_tags(run_id: str, tags: dict[str, str]) -> None:
    client_call("log_batch", run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_artifact(run_id: str, path: Path, folder: str | None = None) -> None:
    client_call("log_artifact", run_id, str(path), artifact_path=folder)


def log_figure(run_id: str, figure: Any, filename: str) -> None:
    client_call("log_figure", run_id, figure, filename)


def log_model(model_dir: Path, schema: Schema, example: Any, name: str = "model") -> Any:
    """Log a saved model as an MLflow pyfunc model with its signature (active run).

    Returns MLflow's ModelInfo (its `model_uri` can be registered).
    """
    from mlflow.models import infer_signature

    from reprotrain.tracking.serving import PipelineModel, pip_requirements

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*integer column.*")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PACKAGE_DIR / "tracking" / "pyfunc_entry.py"),
            artifacts={"model": str(model_dir), "schema": _write_schema(schema, Path(tmp))},
            code_paths=[str(PACKAGE_DIR)],
            signature=infer_signature(
                example, PipelineModel.predict_frame(model_dir, schema, example)
            ),
            input_example=example.head(2),
            pip_requirements=pip_requirements(),
        )


def _write_schema(schema: Schema, directory: Path) -> str:
    path = directory / "schema.json"
    path.write_text(json.dumps(schema.to_json()))
    return str(path)


# --- inputs and lineage -----------------------------------------------------------------


def dataset_name(schema: Schema) -> str:
    """A short name for the data source: sklearn:digits -> digits, data/x.csv -> x."""
    source = str(schema.source)
    stem = Path(source.removeprefix("sklearn:")).stem
    slug = "".join(char if char.isalnum() or char in "_.-" else "-" for char in stem)
    return slug.strip("-.") or "data"


def split_digest(path: Path) -> str:
    """The split file's SHA-256, cut to the 36 characters MLflow stores for a digest."""
    from reprotrain.data.io import file_digest

    return file_digest(path)[:36]


def log_split_inputs(schema: Schema, splits: dict[str, Path]) -> None:
    """Record the split files the active run read (mlflow.log_input): name and digest."""
    for split, path in splits.items():
        dataset = split_dataset(Path(path), f"{dataset_name(schema)}-{split}")
        mlflow.log_input(dataset, context=split)


class SplitFile(MetaDataset):
    """MLflow's record of a table from its metadata alone, profiled as pandas tables are."""

    def __init__(self, source: Any, name: str, digest: str, schema: Any, shape: tuple[int, int]):
        super().__init__(source, name=name, digest=digest, schema=schema)
        self.shape = shape

    @property
    def profile(self) -> dict[str, int]:
        return {"num_rows": self.shape[0], "num_elements": self.shape[0] * self.shape[1]}

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self.profile)}


SCHEMA_COLUMNS_PER_READ = 64


def split_dataset(path: Path, name: str) -> SplitFile:
    """A split file as the record `mlflow.data.from_pandas` makes of the whole file (source,
    digest, schema, profile), built without the file in memory: the schema is inferred a
    few columns at a time, the shape read from the file's metadata."""
    import pandas as pd
    import pyarrow.parquet as pq
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    digest, columns = split_digest(path), pq.read_schema(path).names
    schemas = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # source type guess, int columns
        source = resolve_dataset_source(str(path.resolve()))
        # only the schema is kept: a few columns in memory at a time (one read per column
        # took minutes for an image folder's thousands of pixel columns)
        for start in range(0, len(columns), SCHEMA_COLUMNS_PER_READ):
            some = pd.read_parquet(path, columns=columns[start : start + SCHEMA_COLUMNS_PER_READ])
            schemas.append(from_pandas(some, source, digest=digest).schema)
    known = [one for one in schemas if one is not None]
    schema = (
        MlflowSchema([spec for s in known for spec in s.inputs])
        if len(known) == len(schemas)
        else None
    )
    shape = (pq.ParquetFile(path).metadata.num_rows, len(columns))
    return SplitFile(source, name, digest, schema, shape)


# --- pretrained checkpoints --------------------------------------------------------------

WEIGHTS_TAG = "weights_sha256"  # on the run that wrote a torch model: its weights' digest


def tag_weights(run_id: str, model_dir: Path) -> None:
    """Tag the run with the SHA-256 of the torch weights it wrote (none for scikit-learn),
    so a run that later starts from a copy of them can link back to this one."""
    from reprotrain.data.io import file_digest

    weights = Path(model_dir) / "weights.pt"
    if weights.is_file():
        set_tags(run_id, {WEIGHTS_TAG: file_digest(weights)})


def find_run_by_weights(sha256: str) -> Any | None:
    """The latest run, in any experiment of the store, that wrote weights with this digest."""
    experiments = client_call("search_experiments")
    runs = client_call(
        "search_runs",
        [experiment.experiment_id for experiment in experiments],
        filter_string=f"tags.{WEIGHTS_TAG} = '{sha256}'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0] if runs else None


def log_zoo_source(run_id: str, lineage: dict[str, str]) -> None:
    """Record the pretrained zoo model a run started from (train.model: zoo): params
    `zoo.architecture`, `zoo.sha256` (of the weights file) and tags `zoo.*` (source, path:
    a file under pretrained/ or hf:<id>@<cached commit>/<file>, weights)."""
    log_params(
        run_id, {"zoo": {k: v for k, v in lineage.items() if k in ("architecture", "sha256")}}
    )
    set_tags(run_id, {f"zoo.{key}": value for key, value in lineage.items()})


def log_init_from(run_id: str, lineage: dict[str, str]) -> None:
    """Record the checkpoint a run started from: its digest and, when the store knows the
    run that made it (train.init_from.mlflow_run_id, or a run tagged with that weights
    digest), a link to that run."""
    from mlflow.exceptions import MlflowException

    sha256 = lineage["sha256"]
    log_params(run_id, {"init_from": {"sha256": sha256}})
    tags = {f"init_from.{key}": value for key, value in lineage.items()}
    source_id = lineage.get("mlflow_run_id")
    try:
        source = client_call("get_run", source_id) if source_id else find_run_by_weights(sha256)
    except MlflowException:
        source = None
        log.warning(
            "train.init_from.mlflow_run_id %s: no such run in %s", source_id, shown_tracking_uri()
        )
    if source is not None:
        link = f"#/experiments/{source.info.experiment_id}/runs/{source.info.run_id}"
        tags["init_from.mlflow_run_id"] = source.info.run_id
        tags["init_from.mlflow_run"] = link
        tags["mlflow.note.content"] = (
            f"Started ({lineage['mode']}) from `{lineage['path']}`, sha256 `{sha256[:12]}`, "
            f"written by run [{source.info.run_name or source.info.run_id}]({link})."
        )
    set_tags(run_id, tags)


# --- model registry ---------------------------------------------------------------------

CHAMPION = "champion"


def registered_model_name(schema: Schema, configured: str | None) -> str:
    return configured or f"reprotrain-{dataset_name(schema)}"


def champion_version(name: str) -> str | None:
    """The version the `champion` alias points at, or None (no model or no alias yet)."""
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        return None


def load_registered(name: str, alias: str = CHAMPION) -> Any:
    """`mlflow.pyfunc.load_model("models:/<name>@<alias>")`."""
    return mlflow.pyfunc.load_model(f"models:/{name}@{alias}")


# Run by a fresh interpreter: load a registered model, predict on a Parquet file of rows.
_PREDICT_SCRIPT = """
import sys
import mlflow.pyfunc
import pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.read_parquet(sys.argv[2])).to_parquet(sys.argv[3])
"""


def predict_registered(name: str, rows: pd.DataFrame, alias: str = CHAMPION) -> pd.DataFrame:
    """Predictions of `models:/<name>@<alias>` made in a fresh Python process.

    MLflow puts a model's logged code (`code_paths`) in front of `sys.path`, but a package
    this process has imported already wins: a champion written by another version of the
    pipeline would run this version's code, or fail to import its own modules. A process of
    its own, outside the project, runs the champion with the code it was logged with.
    """
    with tempfile.TemporaryDirectory() as folder:
        rows_file, out_file = Path(folder, "rows.parquet"), Path(folder, "predictions.parquet")
        rows.to_parquet(rows_file)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["MLFLOW_TRACKING_URI"] = tracking_uri()
        uri = f"models:/{name}@{alias}"
        done = subprocess.run(
            [sys.executable, "-c", _PREDICT_SCRIPT, uri, str(rows_file), str(out_file)],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=PREDICT_TIMEOUT_S,
        )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
            raise RuntimeError(f"{uri} did not predict: {lines[-1]}")
        return pd.read_parquet(out_file)


# On a registered version: the SHA-256 of the model directory it was registered from
# (`reprotrain.data.io.tree_digest`), so the same files are registered once (unless two
# evaluate runs register them at the same moment).
DIGEST_TAG = "model_digest"


def find_version_by_digest(name: str, digest: str) -> str | None:
    """The earliest version of registered model `name` tagged with this `DIGEST_TAG`."""
    # Filtered on the tag only (a hex digest needs no quoting); the name, which may hold
    # any character, is compared here.
    versions = client_call("search_model_versions", f"tags.{DIGEST_TAG} = '{digest}'")
    numbers = [int(version.version) for version in versions if version.name == name]
    return str(min(numbers)) if numbers else None


def register_model(model_uri: str, name: str, tags: dict[str, str]) -> str:
    """A new version of `name` from a logged model; returns the version number."""
    logging.getLogger("mlflow.tracking._model_registry").setLevel(logging.WARNING)
    version = mlflow.register_model(model_uri, name, tags=tags)
    return str(version.version)


def set_champion(name: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, CHAMPION, version)


def set_version_tags(name: str, version: str, tags: dict[str, str]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
