"""Stage `train`: a baseline without ML and the configured model, one per seed.

Reads train and dev only; dev is used for early stopping and nothing else.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from reprotrain import config, metrics
from reprotrain.config.errors import run_stage
from reprotrain.config.paths import (
    BASELINE_DIR,
    CHECKPOINT_DIR,
    LEARNING_CURVE,
    MODEL_DIR,
    SCHEMA,
    SPLIT_FILES,
    TRAIN_HISTORY,
    TRAIN_METRICS,
    seed_dir,
)
from reprotrain.data import datasets, io
from reprotrain.models import pretrained
from reprotrain.models.model import build_baseline, input_dtype, save_model
from reprotrain.training import learning_curve
from reprotrain.training.fitting import (
    configure_torch,
    fit_and_score,
    load_train_dev,
    resolve_progress,
)

log = logging.getLogger(__name__)


def summarize(task: str, baseline: dict, fitted: list) -> dict:
    """train.json: baseline and model scores on train and dev, per seed and mean ± std."""
    per_seed = {
        str(run.seed): {
            "train": run.train_scores,
            "dev": run.dev_scores,
            "best_epoch": run.best_epoch,
            "dev_recall_per_class": run.dev_recall,
        }
        for run in fitted
    }
    return {
        "task": task,
        "primary_metric": metrics.PRIMARY[task],
        "baseline": baseline,
        "model": {
            "seeds": per_seed,
            "train": metrics.summarize_seeds([run.train_scores for run in fitted]),
            "dev": metrics.summarize_seeds([run.dev_scores for run in fitted]),
        },
    }


def checkpoint_path(params, seed: int) -> Path | None:
    return CHECKPOINT_DIR / f"seed-{seed}.pt" if params.checkpoint else None


def log_to_mlflow(run_id: str, summary: dict, fitted: list) -> None:
    """Summary metrics on the stage run; each seed's epochs in a nested run."""
    from reprotrain import tracking
    from reprotrain.reporting import plots

    tracking.log_metrics(run_id, tracking.flat_metrics(summary))
    tracking.log_artifact(run_id, TRAIN_HISTORY)
    tracking.log_figure(run_id, plots.history_figure(fitted[0].history), "loss_curves.png")
    for run in fitted:
        child = tracking.child_run(run_id, f"seed-{run.seed}", "train")
        tracking.log_params(child, {"seed": run.seed})
        tracking.log_history(child, run.history)
        final = {
            **{f"train_{k}": v for k, v in run.train_scores.items()},
            **{f"dev_{k}": v for k, v in run.dev_scores.items()},
        }
        if run.best_epoch is not None:
            final["best_epoch"] = run.best_epoch
        tracking.log_metrics(child, final)
        tracking.tag_weights(child, seed_dir(MODEL_DIR, run.seed))
        tracking.end_run(child)


def main() -> None:
    base, params, curve_params = config.load("base", "train", "learning_curve")
    schema = io.read_json(SCHEMA)
    task, n_classes = schema["task"], len(schema["classes"] or [])
    preprocessor, train, dev = load_train_dev(schema, dtype=input_dtype(params.model))
    configure_torch(base, params.model)
    lineage = pretrained.lineage(params.init_from)  # checked before any training

    baseline = build_baseline(task, n_classes)
    baseline.fit(train, dev)
    baseline_scores = {
        "train": metrics.score_model(baseline, task, train),
        "dev": metrics.score_model(baseline, task, dev),
    }
    progress = resolve_progress(params.progress)
    fitted = [
        fit_and_score(
            params,
            schema,
            seed,
            train,
            dev,
            checkpoint=checkpoint_path(params, seed),
            progress=progress,
        )
        for seed in params.seeds
    ]
    summary = summarize(task, baseline_scores, fitted)
    curve = learning_curve.for_train(params, curve_params.fractions, schema, dev, train, fitted[0])
    del train, dev  # what follows reads files: free the matrices before MLflow loads

    with io.atomic_dir(BASELINE_DIR) as tmp:
        save_model(baseline, preprocessor, tmp)
    with io.atomic_dir(MODEL_DIR) as tmp:
        for run in fitted:
            save_model(run.model, preprocessor, seed_dir(tmp, run.seed))
    io.write_json(TRAIN_METRICS, summary)
    io.write_csv(TRAIN_HISTORY, pd.DataFrame(fitted[0].history))
    io.write_csv(LEARNING_CURVE, pd.DataFrame(curve, columns=learning_curve.COLUMNS))
    shutil.rmtree(CHECKPOINT_DIR, ignore_errors=True)  # outputs are complete: nothing to resume

    from reprotrain import tracking

    with tracking.stage_run(
        "train", {"base": base.model_dump(), "train": params.model_dump()}
    ) as run:
        log_to_mlflow(run.info.run_id, summary, fitted)
        if lineage is not None:
            tracking.log_init_from(run.info.run_id, lineage)
        tracking.log_split_inputs(schema, {split: SPLIT_FILES[split] for split in ("train", "dev")})
        tracking.log_artifact(run.info.run_id, LEARNING_CURVE)
        example = datasets.example_frame(SPLIT_FILES["train"], schema)
        tracking.log_model(seed_dir(MODEL_DIR, fitted[0].seed), schema, example)
    primary = metrics.PRIMARY[task]
    log.info(
        "dev %s: model %.4f ± %.4f, baseline %.4f",
        primary,
        summary["model"]["dev"][primary]["mean"],
        summary["model"]["dev"][primary]["std"],
        baseline_scores["dev"][primary],
    )


if __name__ == "__main__":
    run_stage(main)
