"""Stage `train`: a baseline without ML, a strong simple one and the configured model,
one per seed.

Reads train and dev only: models are scored on dev (and torch nets early-stop on it), or,
when `split` cut cross-validation folds (small data), scored over the folds of train+dev
and refit on all of it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import Any, Protocol

import pandas as pd

from reprotrain import config, metrics
from reprotrain.config import TrainParams
from reprotrain.config.errors import run_stage
from reprotrain.config.paths import (
    BASELINE_DIR,
    CHECKPOINT_DIR,
    DEV_ERRORS,
    LEARNING_CURVE,
    MODEL_DIR,
    SCHEMA,
    SPLIT_FILES,
    STAGE_OUTPUTS,
    STRONG_BASELINE_DIR,
    TRAIN_HISTORY,
    TRAIN_METRICS,
    seed_dir,
)
from reprotrain.data import io, outputs
from reprotrain.data.features import Preprocessor
from reprotrain.data.schema import Schema
from reprotrain.metrics import dev_errors
from reprotrain.models import choice, distributed
from reprotrain.models.model import (
    Model,
    build_baseline,
    build_strong_baseline,
    input_dtype,
    save_model,
    start_lineage,
)
from reprotrain.training import learning_curve, selection
from reprotrain.training.fitting import (
    Fitted,
    checkpoint_path,
    configure_torch,
    resolve_progress,
    summarize,
)
from reprotrain.training.validation import Validation, load_validation

log = logging.getLogger(__name__)


BASELINE_DIRS = {"baseline": BASELINE_DIR, "strong_baseline": STRONG_BASELINE_DIR}


def fit_baselines(
    schema: Schema, validation: Validation, seed: int
) -> tuple[dict[str, Model], dict[str, Any]]:
    """The baseline without ML and the strong simple one (an untuned scaled linear model),
    with their train and dev scores: {name: model}, {name: {train, dev}}."""
    builders = {
        "baseline": lambda: build_baseline(schema.task, schema.n_classes),
        "strong_baseline": lambda: build_strong_baseline(schema.task, schema.n_classes, seed),
    }
    models, scores = {}, {}
    for name, build in builders.items():
        models[name], scores[name] = validation.fit_baseline(build, schema.task)
    scores["strong_baseline"]["model"] = type(models["strong_baseline"].estimator[-1]).__name__
    return models, scores


class SeedRuns(Protocol):
    """One MLflow run per seed (tracking.stage_logs.SeedRuns)."""

    def start(self, seed: int) -> Callable[..., None]:
        """Open the seed's run; the result is the fit's `on_epoch`."""
        ...


def fit_seeds(
    params: TrainParams,
    schema: Schema,
    validation: Validation,
    seed_runs: SeedRuns | None,
    progress: str,
) -> list[Fitted]:
    """The configured model once per seed, each fit's epochs streamed to its MLflow run."""
    n_seeds = len(params.seeds)
    return [
        validation.fit(
            params,
            schema,
            seed,
            on_epoch=seed_runs.start(seed) if seed_runs is not None else None,
            checkpoint=checkpoint_path(params, seed),
            progress=progress,
            label=f"seed {seed} ({number} of {n_seeds})",
        )
        for number, seed in enumerate(params.seeds, start=1)
    ]


def write_outputs(
    baselines: dict[str, Model],
    preprocessor: Preprocessor,
    fitted: list[Fitted],
    summary: dict[str, Any],
    curve: list[dict[str, float]],
    analysis: dict[str, Any],
) -> None:
    """models/baseline, models/strong_baseline, models/model (one folder per seed), the
    metrics and the dev error
    analysis of the first seed's model, replaced
    together (a kill leaves the previous set or this one, never a mix)."""
    with outputs.replaced_together("train", STAGE_OUTPUTS["train"]) as staged:
        for name, baseline in baselines.items():
            save_model(baseline, preprocessor, staged.folder(BASELINE_DIRS[name]))
        for run in fitted:
            save_model(run.model, preprocessor, seed_dir(staged.folder(MODEL_DIR), run.seed))
        io.write_json(staged.path(TRAIN_METRICS), summary)
        io.write_csv(staged.path(TRAIN_HISTORY), pd.DataFrame(fitted[0].history))
        curve_frame = pd.DataFrame(curve, columns=learning_curve.COLUMNS)
        io.write_csv(staged.path(LEARNING_CURVE), curve_frame)
        dev_errors.write(staged.folder(DEV_ERRORS["model"]), analysis)
    shutil.rmtree(CHECKPOINT_DIR, ignore_errors=True)  # outputs are complete: nothing to resume


def follow_rank_zero(
    params: TrainParams, fractions: list[float], schema: Schema, validation: Validation
) -> None:
    """A rank > 0 under torchrun: the same torch fits as rank 0, in step with it; rank 0
    alone writes files and MLflow runs."""
    params, _ = selection.choose_model(params, schema, validation)  # as rank 0 chooses
    fitted = fit_seeds(params, schema, validation, None, "off")
    validation.curve(params, fractions, schema, fitted[0], "off")
    distributed.stop()


def main() -> None:
    base, params, curve_params = config.load("base", "train", "learning_curve")
    distributed.launch(params.processes, "stages.train", base.threads)  # > 1: under torchrun
    if distributed.is_main():
        outputs.recover()  # a killed run's outputs, completed before anything reads them
    schema = Schema.read(SCHEMA)
    model = choice.resolve(params.model, schema)  # auto: the first candidate for this data
    # dev split, or cross-validation folds over train+dev when split cut them
    models = choice.candidates(params.model, schema)
    preprocessor, validation = load_validation(schema, models, dtype=input_dtype(model))
    configure_torch(base, model)
    if not distributed.is_main():
        return follow_rank_zero(params, curve_params.fractions, schema, validation)
    lineage = start_lineage(params)  # checked before any training
    progress = resolve_progress(params.progress)

    from reprotrain import tracking
    from reprotrain.tracking import stage_logs

    logged = {"base": base.model_dump(), "train": params.model_dump()}
    with tracking.stage_run("train", logged) as run, stage_logs.SeedRuns(run) as seed_runs:
        tracking.log_split_inputs(schema, {split: SPLIT_FILES[split] for split in ("train", "dev")})
        baselines, baseline_scores = fit_baselines(schema, validation, params.seeds[0])
        params, model_choice = selection.choose_model(params, schema, validation)
        fitted = fit_seeds(params, schema, validation, seed_runs, progress)
        summary = summarize(schema.task, baseline_scores, fitted) | {
            "model_choice": model_choice,
            "validation": validation.describe(),
        }
        curve = validation.curve(params, curve_params.fractions, schema, fitted[0], progress)
        analysis = validation.errors(schema, fitted[0])
        del validation  # what follows reads files: free the matrices before MLflow loads
        write_outputs(baselines, preprocessor, fitted, summary, curve, analysis)
        stage_logs.log_train(run.info.run_id, summary, fitted, seed_runs)
        tracking.log_artifact(run.info.run_id, LEARNING_CURVE)
        for path in sorted(DEV_ERRORS["model"].iterdir()):
            tracking.log_artifact(run.info.run_id, path, "dev_errors")
        model_dir = seed_dir(MODEL_DIR, fitted[0].seed)
        stage_logs.log_trained_model(run.info.run_id, model_dir, schema, lineage)
    distributed.stop()
    primary = metrics.PRIMARY[schema.task]
    log.info(
        "dev %s: model %.4f ± %.4f, strong baseline %.4f, baseline %.4f",
        primary,
        summary["model"]["dev"][primary]["mean"],
        summary["model"]["dev"][primary]["std"],
        baseline_scores["strong_baseline"]["dev"][primary],
        baseline_scores["baseline"]["dev"][primary],
    )


if __name__ == "__main__":
    run_stage(main)
