"""Small typed schemas for unit tests that need only a task and a label set."""

from __future__ import annotations

from typing import Any

from reprotrain.data.schema import Feature, Schema


def make_schema(
    task: str = "classification",
    classes: Any = None,
    image_shape: list[int] | None = None,
    features: list[str] = (),
) -> Schema:
    """A schema as `prepare` would write it, for data no file holds."""
    return Schema(
        source="test",
        target="label",
        task=task,
        features=tuple(Feature(name, "float64", "numeric") for name in features),
        classes=None if classes is None else list(classes),
        image_shape=image_shape,
        n_rows=0,
    )
