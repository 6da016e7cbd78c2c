"""Stage `prepare`: load the source named in params, validate it, write Parquet + schema."""

from __future__ import annotations

import logging

from reprotrain import config
from reprotrain.config.errors import run_stage
from reprotrain.config.paths import PREPARE_METRICS, PREPARED_DATA, SCHEMA, STAGE_OUTPUTS
from reprotrain.data import datasets, io, outputs

log = logging.getLogger(__name__)


def main() -> None:
    outputs.recover()  # a killed run's outputs, completed before anything reads them
    (params,) = config.load("prepare")
    frame, target, image_shape = datasets.load_source(
        params.source,
        params.target,
        params.column_types,
        tuple(params.image.size),
        params.image.mode,
    )
    frame, dropped = datasets.drop_missing_target(frame, target, params.drop_missing_target)
    task = datasets.infer_task(frame[target], params.task) if target in frame else params.task
    datasets.validate(frame, target, task, params.source, declared=params.column_types)
    schema = datasets.build_schema(frame, target, task, params.source, image_shape)

    kinds = [feature.kind for feature in schema.features]
    summary = {
        "rows": len(frame),
        "features": len(schema.features),
        "feature_kinds": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
        "dropped_missing_target": dropped,
        "task": task,
        "classes": schema.n_classes,
    }
    with outputs.replaced_together("prepare", STAGE_OUTPUTS["prepare"]) as staged:
        io.write_parquet(staged.path(PREPARED_DATA), frame)
        schema.write(staged.path(SCHEMA))
        io.write_json(staged.path(PREPARE_METRICS), summary)
    if dropped:
        log.warning("dropped %d rows without a target (prepare.drop_missing_target)", dropped)
    log.info("prepared %d rows, %d features, task %s", len(frame), len(schema.features), task)


if __name__ == "__main__":
    run_stage(main)
