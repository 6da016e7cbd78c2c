"""Stage `evaluate`: the only stage that reads the test split.

Scores the baseline, the trained model (every seed, mean ± std) and the tuned model on
test, each with a bootstrap confidence interval; picks the model to report by its dev
score (never by test); writes the fit verdict, the plots (CSV for DVC, PNG for the
report and MLflow) and metrics/report.md; registers the winner in the MLflow Model
Registry and moves the `champion` alias only when it wins beyond the interval.
"""

from __future__ import annotations

import logging

from reprotrain import config
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
from reprotrain.evaluation import paired
from reprotrain.evaluation import summary as evaluation
from reprotrain.metrics import dev_errors
from reprotrain.models.model import load_model, predict_rows
from reprotrain.reporting import report
from reprotrain.reporting.error_plots import write_mistakes_grid
from reprotrain.reporting.evaluation_plots import write_plots

log = logging.getLogger(__name__)


def main() -> None:
    outputs.recover()  # a killed run's outputs, completed before anything reads them
    base, params = config.load("base", "evaluate")
    schema = Schema.read(SCHEMA)
    test_frame = tables.read_parquet(SPLIT_FILES["test"])
    y_true = datasets.encode_target(test_frame, schema)
    curve = evaluation.read_curve(LEARNING_CURVE)
    train_summary, tune_summary = io.read_json(TRAIN_METRICS), io.read_json(TUNE_METRICS)
    dirs = evaluation.model_dirs()
    predictions = {name: predict_rows(load_model(path), test_frame) for name, path in dirs.items()}
    summary, winner = evaluation.summarize(
        schema, params, base.seed, y_true, predictions, dirs, train_summary, tune_summary, curve
    )

    # The selected model against each alternative, paired on the same test resamples.
    comparisons = paired.compare(
        schema.task, y_true, predictions, winner, params.bootstrap, base.seed
    )
    summary["paired"] = comparisons
    headline = evaluation.headline(summary, train_summary, tune_summary)
    selected = summary["selected"]["model"]  # its dev errors (written by train or tune)
    errors = dev_errors.read(DEV_ERRORS[selected]) if selected in DEV_ERRORS else None
    with outputs.replaced_together("evaluate", STAGE_OUTPUTS["evaluate"]) as staged:
        plots = staged.folder(PLOTS_DIR)
        images = write_plots(plots, schema, y_true, predictions[winner], summary, curve, params)
        io.write_json(staged.path(EVALUATE_METRICS), summary)
        io.write_json(staged.path(SUMMARY_METRICS), headline)
        title = report.MODEL_TITLES[selected]
        grid = write_mistakes_grid(plots, errors, title)
        sections = [
            report.render(summary, curve, images),
            *report.paired_section(comparisons, summary["primary_metric"]),
            *report.dev_errors_section(errors, title, grid),
            *report.leakage_section(io.read_json(SPLIT_METRICS).get("leakage")),
        ]
        io.write_text(staged.path(REPORT), "\n".join(sections))
    verdict = summary["fit"][selected]
    print(
        f"fit verdict ({selected}): {verdict['verdict']}: {verdict['reason']}; "
        f"remedy: {verdict['remedy']}"
    )
    more_data = summary["learning_curve"]
    log.info("learning curve: %s (%s)", more_data["verdict"], more_data["reason"])

    from reprotrain.tracking import stage_logs

    stage_logs.log_evaluation(base, params, schema, summary, headline, test_frame, dirs[winner])


if __name__ == "__main__":
    run_stage(main)
