"""Stage `tune`: search the space in params on dev, or on cross-validation folds of
train+dev (never test); save the best model (refit on train+dev under cross-validation).

`python -m stages.tune` (what `dvc repro` runs) coordinates: it opens the study, runs
trials, waits for trials running elsewhere, refits the best configuration with the first
train seed and writes models/tuned and the metrics. `python -m stages.tune --worker`
only runs trials of a study kept in a shared `tune.storage`. Every trial, whoever runs
it, is a nested MLflow run under the coordinator's stage run.
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from reprotrain import config, tuning
from reprotrain.config import TuneParams
from reprotrain.config.errors import UserError, run_stage
from reprotrain.config.paths import (
    DEV_ERRORS,
    SCHEMA,
    SPLIT_FILES,
    STAGE_OUTPUTS,
    TUNE_HISTORY,
    TUNE_METRICS,
    TUNE_TRIALS,
    TUNED_DIR,
)
from reprotrain.data import io, outputs
from reprotrain.data.features import Preprocessor
from reprotrain.data.schema import Schema
from reprotrain.metrics import dev_errors
from reprotrain.models import choice, distributed
from reprotrain.models.model import input_dtype, resolve_device, save_model, start_lineage
from reprotrain.training.fitting import Fitted, configure_torch
from reprotrain.training.validation import load_validation
from reprotrain.tuning import group, runner

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.tune", description=__doc__)
    parser.add_argument(
        "--worker",
        action="store_true",
        help="only run trials of the study in tune.storage (the coordinator writes outputs)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=600.0,
        help="worker: seconds to wait for a coordinator to open the study (default 600)",
    )
    return parser.parse_args(argv)


def write_outputs(
    best: Fitted, preprocessor: Preprocessor, summary: dict, trials: list[dict], analysis: dict
) -> None:
    """models/tuned, the metrics and the tuned model's dev error analysis, replaced
    together (a kill leaves one whole set)."""
    history = tuning.history_table(trials, summary["direction"])  # never empty: a best trial
    with outputs.replaced_together("tune", STAGE_OUTPUTS["tune"]) as staged:
        save_model(best.model, preprocessor, staged.folder(TUNED_DIR))
        io.write_json(staged.path(TUNE_METRICS), summary)
        io.write_csv(staged.path(TUNE_TRIALS), pd.DataFrame(trials))
        io.write_csv(staged.path(TUNE_HISTORY), pd.DataFrame(history))
        dev_errors.write(staged.folder(DEV_ERRORS["tuned"]), analysis)


def coordinate(
    search: runner.Search, study, storage, fingerprint: str, preprocessor, lineage
) -> None:
    """Run the study under this stage's MLflow run; write models/tuned and the metrics."""
    from reprotrain import tracking
    from reprotrain.tracking import stage_logs

    with tracking.stage_run("tune", search.logged_params()) as run:
        run_id = run.info.run_id
        tracking.log_split_inputs(search.schema, {s: SPLIT_FILES[s] for s in ("train", "dev")})
        trial_runs = stage_logs.TrialRuns(run_id)
        best, summary = runner.coordinate(search, study, storage, fingerprint, run_id, trial_runs)
        stage_logs.close_lost_runs(study)
        analysis = search.validation.errors(search.schema, best)
        write_outputs(best, preprocessor, summary, tuning.trials_table(study), analysis)
        stage_logs.log_study(run_id, study, summary, search.base.seed)
        tracking.tag_weights(run_id, TUNED_DIR)
        for path in sorted(DEV_ERRORS["tuned"].iterdir()):
            tracking.log_artifact(run_id, path, "dev_errors")
        stage_logs.log_trained_model(run_id, TUNED_DIR, search.schema, lineage)
    log.info(
        "best dev %s %.4f (trial %d of %d; %s): %s",
        summary["metric"],
        summary["best_dev_score"],
        summary["best_trial"],
        summary["n_trials"],
        summary["trial_states"],
        summary["best_params"],
    )


def work(search: runner.Search, study, storage, fingerprint: str, wait_s: float) -> None:
    """Run trials of a shared study under the coordinator's MLflow run; write nothing."""
    from reprotrain import tracking
    from reprotrain.tracking import stage_logs

    parent_run_id = runner.wait_for_coordinator(search, study, wait_s)
    if parent_run_id is None:
        log.info("study %r needs no more trials", search.params.study_name)
        return
    tuning.check_fingerprint(study, fingerprint, claim=False)
    runner.work(search, study, storage, stage_logs.TrialRuns.joining(parent_run_id))
    tracking.flush()  # the trials' streamed epochs


def check_worker(args: argparse.Namespace, params: TuneParams) -> None:
    if args.worker and params.storage is None:
        raise UserError(
            "params.yaml: tune.storage: --worker needs a shared storage (sqlite:///..., "
            "journal:///... or postgresql://...), got null"
        )
    if args.worker and distributed.under_torchrun():
        raise UserError(
            "--worker: a worker runs trials in its own process; under torchrun start the "
            "coordinator (`torchrun ... -m stages.tune`, or tune.processes), which trains "
            "each trial on the process group"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base, train_params, params = config.load("base", "train", "tune")
    check_worker(args, params)
    distributed.launch(params.processes, "stages.tune", base.threads)  # > 1: under torchrun
    if distributed.is_main():
        outputs.recover()  # a killed run's outputs, completed before anything reads them
    runner.check_before_data(train_params, params)  # params errors before any data is read
    schema = Schema.read(SCHEMA)
    # auto: the CNN on image-shaped data, gradient boosting on tables (the one searched;
    # train also fits the linear candidate and keeps the better on dev)
    model = choice.resolve(train_params.model, schema)
    train_params = train_params.model_copy(update={"model": model})
    train_params, params = runner.search_params(train_params, params)
    # the dev split, or cross-validation folds over train+dev when split cut them
    preprocessor, validation = load_validation(
        schema, runner.models_searched(train_params, params), dtype=input_dtype(train_params.model)
    )
    search = runner.make_search(base, train_params, params, schema, validation)
    configure_torch(base)  # always: the search may pick a torch model whatever train.model is
    group.join(resolve_device(train_params.device))  # under torchrun: the process group
    if not distributed.is_main():
        return group.follow(search.fit)  # train what rank 0 announces, write nothing
    lineage = start_lineage(train_params)  # a refused checkpoint: once, here
    storage = tuning.open_storage(params.storage)
    study, fingerprint = runner.open_search_study(search, storage)
    if args.worker:
        work(search, study, storage, fingerprint, args.wait)
    else:
        coordinate(search, study, storage, fingerprint, preprocessor, lineage)
    distributed.stop()


if __name__ == "__main__":
    run_stage(main)
