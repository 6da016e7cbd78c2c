"""Stage `tune`: search the space in params on dev (never test); save the best model.

Each trial is a nested MLflow run under the stage's run. The best configuration is
refit with the first train seed and saved to models/tuned.
"""

from __future__ import annotations

import logging

import pandas as pd

from stages import config, datasets, io, metrics, tuning
from stages.errors import run_stage
from stages.fitting import configure_torch, fit_and_score, load_train_dev
from stages.models import save_model
from stages.paths import SCHEMA, SPLIT_FILES, TUNE_METRICS, TUNE_TRIALS, TUNED_DIR

log = logging.getLogger(__name__)


def make_objective(train_params, space, schema, train, dev, seed, parent_run_id):
    """trial -> dev score of the trial's configuration, logged as a nested run."""
    from stages import tracking

    primary = metrics.PRIMARY[schema["task"]]

    def objective(trial) -> float:
        overrides = tuning.suggest(trial, space)
        run_id = tracking.child_run(parent_run_id, f"trial-{trial.number}", "tune")
        tracking.log_params(run_id, {"trial": trial.number, **overrides})
        try:
            fitted = fit_and_score(tuning.apply(train_params, overrides), schema, seed, train, dev)
        except Exception:
            tracking.set_tags(run_id, {"state": "failed"})
            tracking.end_run(run_id, "FAILED")
            raise
        tracking.log_history(run_id, fitted.history)
        tracking.log_metrics(run_id, {f"dev_{k}": v for k, v in fitted.dev_scores.items()})
        tracking.set_tags(run_id, {"state": "complete"})
        tracking.end_run(run_id)
        return fitted.dev_scores[primary]

    return objective


def main() -> None:
    base, train_params, params = config.load("base", "train", "tune")
    tuning.validate_space(params.space)
    schema = io.read_json(SCHEMA)
    preprocessor, train, dev = load_train_dev(schema)
    configure_torch(base)
    seed = train_params.seeds[0]

    from stages import tracking

    logged = {
        "base": base.model_dump(),
        "train": train_params.model_dump(),
        "tune": params.model_dump(),
    }
    with tracking.stage_run("tune", logged) as run:
        tracking.log_split_inputs(schema, {split: SPLIT_FILES[split] for split in ("train", "dev")})
        study = tuning.create_study(params, base.seed)
        objective = make_objective(
            train_params, params.space, schema, train, dev, seed, run.info.run_id
        )
        tuning.run_study(study, objective, params)
        best_params = tuning.decode_params(study.best_trial.params, params.space)
        best = fit_and_score(tuning.apply(train_params, best_params), schema, seed, train, dev)
        summary = {
            "method": params.method,
            "best_params": best_params,
            "best_dev_score": study.best_value,
            "primary_metric": metrics.PRIMARY[schema["task"]],
            "n_trials": len(study.trials),
            "trial_states": tuning.state_counts(study),
            "best_model": {
                "train": best.train_scores,
                "dev": best.dev_scores,
                "best_epoch": best.best_epoch,
            },
        }
        with io.atomic_dir(TUNED_DIR) as tmp:
            save_model(best.model, preprocessor, tmp)
        io.write_json(TUNE_METRICS, summary)
        io.write_csv(TUNE_TRIALS, pd.DataFrame(tuning.trials_table(study)))

        tracking.log_metrics(
            run.info.run_id,
            tracking.flat_metrics(
                {
                    "best_dev_score": summary["best_dev_score"],
                    "n_trials": summary["n_trials"],
                    "best_model": summary["best_model"],
                }
            ),
        )
        tracking.log_params(run.info.run_id, {"best": best_params})
        tracking.log_artifact(run.info.run_id, TUNE_TRIALS)
        example = datasets.feature_frame(pd.read_parquet(SPLIT_FILES["train"]).head(5), schema)
        tracking.log_model(TUNED_DIR, schema, example)
    log.info(
        "best dev %s %.4f after %d trials: %s",
        summary["primary_metric"],
        summary["best_dev_score"],
        summary["n_trials"],
        best_params,
    )


if __name__ == "__main__":
    run_stage(main)
