"""What each stage logs to MLflow, beyond its params: train's seeds, tune's trials and
study, evaluate's test scores. Runs open when the work starts (epochs stream in as they
end); the summaries, plots and models are logged after the stage has written its outputs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from reprotrain.config import BaseParams, EvaluateParams, flatten
from reprotrain.config.errors import UserError
from reprotrain.config.paths import (
    EVALUATE_METRICS,
    MODEL_DIR,
    PLOTS_DIR,
    REPORT,
    SPLIT_FILES,
    SUMMARY_METRICS,
    TRAIN_HISTORY,
    TUNE_METRICS,
    TUNE_TRIALS,
    seed_dir,
)
from reprotrain.data import datasets
from reprotrain.data.schema import Schema
from reprotrain.reporting import plots
from reprotrain.tracking import registry, runs
from reprotrain.tuning import search as tuning

log = logging.getLogger(__name__)

RUN_ATTR = "mlflow_run_id"  # trial attr: the trial's nested run
# A pruned trial ended as planned (the pruner stopped it): FINISHED, tagged state=pruned.
RUN_STATUS = {"complete": "FINISHED", "pruned": "FINISHED", "failed": "FAILED"}
ERROR_CHARS = 500  # of a failed trial's error, in its run's tags


class EpochStream:
    """A run's per-epoch metrics, logged as each epoch ends (the stage's `on_epoch`);
    `finish` logs the rows that were not streamed: epochs restored from a checkpoint, the
    one row of a model without epochs."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.epochs: set[int] = set()

    def __call__(self, row: dict[str, float]) -> None:
        runs.log_epoch(self.run_id, row)
        self.epochs.add(int(row["epoch"]))

    def finish(self, history: list[dict[str, float]]) -> None:
        runs.log_history(self.run_id, [r for r in history if int(r["epoch"]) not in self.epochs])


class SeedRuns:
    """Each seed's fit as a run nested under the train run, opened when the fit starts.
    A context manager: runs still open when the stage fails end FAILED."""

    def __init__(self, parent: Any):
        self.parent_run_id = parent.info.run_id
        self.streams: dict[int, EpochStream] = {}

    def __enter__(self) -> SeedRuns:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in self.streams.values():
            runs.end_run(stream.run_id, "FAILED")
        self.streams.clear()

    def start(self, seed: int) -> EpochStream:
        """Open the seed's run; the returned stream is the fit's `on_epoch`."""
        run_id = runs.child_run(
            self.parent_run_id, f"seed-{seed}", "train", {runs.RUN_KIND: "seed"}
        )
        runs.log_params(run_id, {"seed": seed})
        self.streams[seed] = EpochStream(run_id)
        return self.streams[seed]

    def end(self, run: Any) -> None:
        """The seed's final scores and weights digest (its model files are written)."""
        stream = self.streams.pop(run.seed)
        stream.finish(run.history)
        final = {
            **{f"train_{k}": v for k, v in run.train_scores.items()},
            **{f"dev_{k}": v for k, v in run.dev_scores.items()},
        }
        if run.best_epoch is not None:
            final["best_epoch"] = run.best_epoch
        runs.log_metrics(stream.run_id, final)
        runs.tag_weights(stream.run_id, seed_dir(MODEL_DIR, run.seed))
        runs.end_run(stream.run_id)


def log_train(run_id: str, summary: dict[str, Any], fitted: list[Any], seeds: SeedRuns) -> None:
    """Summary metrics and the loss curves on the stage run; each seed's run closed."""
    runs.log_metrics(run_id, runs.flat_metrics(summary))
    runs.log_artifact(run_id, TRAIN_HISTORY)
    runs.log_figure(run_id, plots.history_figure(fitted[0].history), "loss_curves.png")
    for run in fitted:
        seeds.end(run)


def log_trained_model(run_id: str, model_dir: Path, schema: Schema, lineage: Any) -> None:
    """The stage's model (with an input example) and where its weights started from."""
    if lineage is not None and "architecture" in lineage:  # train.model: zoo
        runs.log_zoo_source(run_id, lineage)
    elif lineage is not None:
        runs.log_init_from(run_id, lineage)
    example = datasets.example_frame(SPLIT_FILES["train"], schema)
    runs.log_model(model_dir, schema, example)


def worker_name() -> str:
    """host:pid of the process running a trial (tagged on its nested run)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class TrialRuns:
    """Each trial as a run nested under the coordinator's stage run (tuning's observer)."""

    def __init__(self, parent_run_id: str):
        self.parent_run_id = parent_run_id
        self.streams: dict[int, EpochStream] = {}  # trial number -> its run's epochs

    @classmethod
    def joining(cls, parent_run_id: str) -> TrialRuns:
        """A worker's: the coordinator's run must be in this process's MLflow store."""
        runs.setup()
        if runs.run_status(parent_run_id) is None:
            raise UserError(
                f"MLFLOW_TRACKING_URI: the coordinator's run {parent_run_id} is not in "
                f"{runs.shown_tracking_uri()}; point every worker at the coordinator's MLflow store"
            )
        return cls(parent_run_id)

    def started(self, trial: optuna.Trial, overrides: dict[str, Any]) -> None:
        run_id = runs.child_run(
            self.parent_run_id,
            f"trial-{trial.number}",
            "tune",
            {"worker": worker_name(), runs.RUN_KIND: "trial"},
        )
        trial.set_user_attr(RUN_ATTR, run_id)  # for close_lost_runs, in whichever process
        self.streams[trial.number] = EpochStream(run_id)
        runs.log_params(run_id, {"trial": trial.number, **overrides})

    def epoch(self, trial: optuna.Trial, row: dict[str, float]) -> None:
        self.streams[trial.number](row)

    def ended(
        self,
        trial: optuna.Trial,
        state: str,
        history: list[dict[str, float]],
        final: dict[str, float],
        error: str | None = None,
    ) -> None:
        stream = self.streams.pop(trial.number)
        run_id = stream.run_id
        stream.finish(history)
        runs.log_metrics(run_id, final)
        runs.set_tags(run_id, {"state": state, **({"error": error[:ERROR_CHARS]} if error else {})})
        runs.end_run(run_id, RUN_STATUS[state])


def close_lost_runs(study: optuna.Study) -> None:
    """Nested runs of trials whose worker died are left RUNNING: mark them failed."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        run_id = trial.user_attrs.get(RUN_ATTR)
        if run_id and runs.run_status(run_id) == "RUNNING":
            runs.set_tags(run_id, {"state": "failed", "error": "worker lost"})
            runs.end_run(run_id, "FAILED")


def log_study(run_id: str, study: optuna.Study, summary: dict[str, Any], seed: int) -> None:
    """The parent run: best params and score, counts, history and importance plots."""
    counts = {f"trials_{state}": n for state, n in summary["trial_states"].items()}
    scores = {key: summary[key] for key in ("best_dev_score", "n_trials", "best_model")}
    runs.log_metrics(run_id, runs.flat_metrics(scores) | counts)
    runs.log_params(run_id, {"best": summary["best_params"]})
    runs.set_tags(run_id, {"best_trial": summary["best_trial"]})
    runs.log_artifact(run_id, TUNE_METRICS)
    runs.log_artifact(run_id, TUNE_TRIALS)
    trials = tuning.trials_table(study)
    history = tuning.history_table(trials, summary["direction"])
    figure = plots.tuning_history_figure(trials, history, summary["metric"])
    runs.log_figure(run_id, figure, "optimization_history.png")
    importances, reason = tuning.param_importances(study, seed)
    if importances is None:
        log.info("no parameter importance plot: %s", reason)
        runs.set_tags(run_id, {"param_importance": f"skipped: {reason}"})
        return
    runs.log_metrics(run_id, {f"importance.{k}": v for k, v in importances.items()})
    runs.log_figure(run_id, plots.importance_figure(importances), "param_importances.png")


def flat_scores(test: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names: test_tuned_accuracy, test_tuned_accuracy_ci_low, ..."""
    flat: dict[str, float] = {}
    for model in ("baseline", "strong_baseline", "tuned"):
        for key, value in flatten(test[model], "_").items():
            flat[f"test_{model}_{key}".removesuffix("_value")] = value
    for seed, scores in test["model"]["seeds"].items():
        flat |= {f"test_{seed}_{metric}": score["value"] for metric, score in scores.items()}
    flat |= {f"test_model_{key}": v for key, v in flatten(test["model"]["mean"], "_").items()}
    return flat


def headline_metrics(headline: dict[str, Any], primary: str) -> dict[str, float]:
    """metrics/summary.json as MLflow metrics: the selected model's test score (with its
    interval) as `test_<primary>`, the baseline's as `test_baseline_<primary>`, dev scores,
    the train - dev gap, the best epoch and tuning's best dev score."""
    selected, baseline = headline["selected"], headline["baseline"]
    values = {f"test_{key}": value for key, value in selected["test"].items()}
    values[f"test_baseline_{primary}"] = baseline["test"][primary]
    values[f"test_strong_baseline_{primary}"] = headline["strong_baseline"]["test"][primary]
    values["train_dev_gap"] = selected["train_dev_gap"]
    values["tune_best_dev"] = headline["tune_best_dev"]
    values[f"dev_{primary}"] = selected["dev"]
    values[f"dev_baseline_{primary}"] = baseline["dev"]
    if "best_epoch" in selected:
        values["best_epoch"] = selected["best_epoch"]
    return values


@contextlib.contextmanager
def evaluation_run(base: BaseParams, params: EvaluateParams) -> Iterator[Any]:
    """The evaluate run, opened when the stage starts, with every param that made the
    models (params.yaml whole: the runs that hold test scores compare by them)."""
    produced_by = runs.params_file() or {"base": {"seed": base.seed}}
    with runs.stage_run("evaluate", produced_by | {"evaluate": params.model_dump()}) as run:
        yield run


def log_evaluation(
    run: Any,
    params: EvaluateParams,
    schema: Schema,
    summary: dict[str, Any],
    headline: dict[str, Any],
    test_frame: Any,
    winner_dir: Path,
) -> None:
    """On the evaluate run: the headline scores (also on the execution's parent run), test
    input, all scores, verdict tags, plots, report; then the registry."""
    run_id = run.info.run_id
    headline_scores = headline_metrics(headline, summary["primary_metric"])
    runs.log_metrics(run_id, headline_scores)
    runs.log_metrics(run.data.tags[runs.PARENT_TAG], headline_scores)
    runs.log_split_inputs(schema, {split: SPLIT_FILES[split] for split in ("dev", "test")})
    runs.log_metrics(run_id, flat_scores(summary["test"]))
    selected = summary["selected"]["model"]
    runs.set_tags(
        run_id,
        {
            "fit_verdict": summary["fit"][selected]["verdict"],
            "fit_remedy": summary["fit"][selected]["remedy"],
            "learning_curve": summary["learning_curve"]["verdict"],
            "selected_model": selected,
        },
    )
    runs.log_artifact(run_id, EVALUATE_METRICS)
    runs.log_artifact(run_id, SUMMARY_METRICS)
    runs.log_artifact(run_id, REPORT)
    for path in sorted(PLOTS_DIR.iterdir()):  # PNGs at the top, tables under plots/
        runs.log_artifact(run_id, path, None if path.suffix == ".png" else "plots")
    if params.registry.enabled:
        registry.register_winner(run_id, params.registry, schema, summary, test_frame, winner_dir)
