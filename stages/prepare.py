"""Stage `prepare`: load the source named in params, validate it, write Parquet + schema."""

from __future__ import annotations

import logging

from stages import config, datasets, io
from stages.errors import run_stage
from stages.paths import PREPARE_METRICS, PREPARED_DATA, SCHEMA

log = logging.getLogger(__name__)


def main() -> None:
    (params,) = config.load("prepare")
    frame, target, image_shape = datasets.load_source(params.source, params.target)
    task = datasets.infer_task(frame[target], params.task) if target in frame else params.task
    datasets.validate(frame, target, task, params.source)
    schema = datasets.build_schema(frame, target, task, params.source, image_shape)

    io.write_parquet(PREPARED_DATA, frame)
    io.write_json(SCHEMA, schema)
    io.write_json(
        PREPARE_METRICS,
        {
            "rows": len(frame),
            "features": len(schema["features"]),
            "task": task,
            "classes": len(schema["classes"] or []),
        },
    )
    log.info("prepared %d rows, %d features, task %s", len(frame), len(schema["features"]), task)


if __name__ == "__main__":
    run_stage(main)
