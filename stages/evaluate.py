"""Stage `evaluate`: the only stage that reads the test split.

Scores both baselines, the trained model (every seed, mean ± std) and the tuned model on
test, each with a bootstrap confidence interval; picks the model to report on dev, never
on test (the tuned model only when it beats the trained one beyond the noise, paired);
writes the fit verdict, the paired comparisons, the plots (CSV for DVC, PNG for the
report and MLflow) and metrics/report.md; registers the winner in the MLflow Model
Registry and moves the `champion` alias only when it beats the champion beyond the noise.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from reprotrain import config
from reprotrain.config import EvaluateParams
from reprotrain.config.errors import run_stage
from reprotrain.config.paths import (
    DEV_ERRORS,
    EVALUATE_METRICS,
    LEARNING_CURVE,
    PLOTS_DIR,
    REPORT,
    SCHEMA,
    SPLIT_FILES,
    SPLIT_METRICS,
    STAGE_OUTPUTS,
    SUMMARY_METRICS,
    TRAIN_METRICS,
    TUNE_METRICS,
)
from reprotrain.data import datasets, io, outputs, tables
from reprotrain.data.schema import Schema
from reprotrain.evaluation import summary as evaluation
from reprotrain.evaluation.summary import Prediction
from reprotrain.metrics import dev_errors
from reprotrain.models.model import load_model, predict_rows
from reprotrain.reporting import report
from reprotrain.reporting.error_plots import write_mistakes_grid
from reprotrain.reporting.evaluation_plots import write_plots

log = logging.getLogger(__name__)


def write_outputs(
    schema: Schema,
    params: EvaluateParams,
    y_true: np.ndarray,
    prediction: Prediction,
    summary: dict[str, Any],
    headline: dict[str, Any],
    curve: list[dict[str, float]],
) -> None:
    """evaluate.json, summary.json, the plots and report.md, replaced together."""
    selected = summary["selected"]["model"]  # its dev errors (written by train or tune)
    errors = dev_errors.read(DEV_ERRORS[selected]) if selected in DEV_ERRORS else None
    with outputs.replaced_together("evaluate", STAGE_OUTPUTS["evaluate"]) as staged:
        plots = staged.folder(PLOTS_DIR)
        images = write_plots(plots, schema, y_true, prediction, summary, curve, params)
        io.write_json(staged.path(EVALUATE_METRICS), summary)
        io.write_json(staged.path(SUMMARY_METRICS), headline)
        title = report.MODEL_TITLES[selected]
        grid = write_mistakes_grid(plots, errors, title)
        sections = [
            report.render(summary, curve, images),
            *report.paired_section(summary["paired"], summary["primary_metric"]),
            *report.dev_errors_section(errors, title, grid),
            *report.leakage_section(io.read_json(SPLIT_METRICS).get("leakage")),
        ]
        io.write_text(staged.path(REPORT), "\n".join(sections))


def dev_predictions(schema: Schema, dirs: dict[str, Path]) -> evaluation.Scored | None:
    """The trained (first seed) and tuned models on dev, or their out-of-fold predictions
    under cross-validation (their final models were refit on dev): the choice between them
    is made there, paired, never on test. None when only one of them was cross-validated."""
    first_seed = next(name for name in dirs if name.startswith("seed-"))
    cross_validated = {
        name: dev_errors.read_cv_predictions(DEV_ERRORS[name]) for name in DEV_ERRORS
    }
    if all(found is not None for found in cross_validated.values()):
        (y_true, trained), (_, tuned) = cross_validated["model"], cross_validated["tuned"]
        predictions = {first_seed: trained, "tuned": tuned}
        return evaluation.Scored(y_true, predictions, "on out-of-fold predictions")
    if any(found is not None for found in cross_validated.values()):
        return None  # one was scored out of fold, the other on dev: no paired comparison
    dev_frame = tables.read_parquet(SPLIT_FILES["dev"])
    return evaluation.Scored(
        datasets.encode_target(dev_frame, schema),
        {name: predict_rows(load_model(dirs[name]), dev_frame) for name in (first_seed, "tuned")},
    )


def main() -> None:
    outputs.recover()  # a killed run's outputs, completed before anything reads them
    base, params = config.load("base", "evaluate")
    schema = Schema.read(SCHEMA)
    train_summary, tune_summary = io.read_json(TRAIN_METRICS), io.read_json(TUNE_METRICS)

    from reprotrain.tracking import stage_logs

    with stage_logs.evaluation_run(base, params) as run:  # open while the models are scored
        test_frame = tables.read_parquet(SPLIT_FILES["test"])
        y_true = datasets.encode_target(test_frame, schema)
        curve = evaluation.read_curve(LEARNING_CURVE)
        dirs = evaluation.model_dirs()
        predictions = {
            name: predict_rows(load_model(path), test_frame) for name, path in dirs.items()
        }
        summary, winner = evaluation.summarize(
            schema,
            params,
            base.seed,
            y_true,
            predictions,
            dirs,
            train_summary,
            tune_summary,
            curve,
            dev=dev_predictions(schema, dirs),
        )
        headline = evaluation.headline(summary, train_summary, tune_summary)
        write_outputs(schema, params, y_true, predictions[winner], summary, headline, curve)
        selected = summary["selected"]["model"]
        verdict = summary["fit"][selected]
        print(  # the one line a user reads after dvc repro (stdout; logs go to stderr)
            f"fit verdict ({selected}): {verdict['verdict']}: {verdict['reason']}; "
            f"remedy: {verdict['remedy']}"
        )
        more_data = summary["learning_curve"]
        log.info("learning curve: %s (%s)", more_data["verdict"], more_data["reason"])
        stage_logs.log_evaluation(run, params, schema, summary, headline, test_frame, dirs[winner])


if __name__ == "__main__":
    run_stage(main)
