"""Stage `prepare`: load the source named in params, validate it, write Parquet + schema."""

from __future__ import annotations

import logging

from reprotrain import config
from reprotrain.config.errors import run_stage
from reprotrain.config.paths import PREPARE_METRICS, PREPARED_DATA, SCHEMA
from reprotrain.data import datasets, io

log = logging.getLogger(__name__)


def main() -> None:
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

    io.write_parquet(PREPARED_DATA, frame)
    schema.write(SCHEMA)
    kinds = [feature.kind for feature in schema.features]
    io.write_json(
        PREPARE_METRICS,
        {
            "rows": len(frame),
            "features": len(schema.features),
            "feature_kinds": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
            "dropped_missing_target": dropped,
            "task": task,
            "classes": schema.n_classes,
        },
    )
    if dropped:
        log.warning("dropped %d rows without a target (prepare.drop_missing_target)", dropped)
    log.info("prepared %d rows, %d features, task %s", len(frame), len(schema.features), task)


if __name__ == "__main__":
    run_stage(main)
