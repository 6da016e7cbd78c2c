"""The schema of a prepared dataset (data/prepared/schema.json): what every later stage,
model directory and registered model knows about the data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotrain.config.errors import UserError
from reprotrain.data import io

TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str  # the pandas dtype prepare read
    kind: str  # numeric | categorical | boolean | text (data.tables.kind_of)


@dataclass(frozen=True)
class Schema:
    source: str  # prepare.source
    target: str
    task: str  # classification | regression
    features: tuple[Feature, ...]
    classes: list[Any] | None  # the label set, sorted (classification)
    image_shape: list[int] | None  # [channels, height, width] of image data
    n_rows: int

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def is_classification(self) -> bool:
        return self.task == "classification"

    @property
    def labels(self) -> list[Any]:
        """The class labels in index order ([] for regression)."""
        return list(self.classes or [])

    @property
    def n_classes(self) -> int:
        return len(self.classes or [])

    def to_json(self) -> dict[str, Any]:
        """schema.json's mapping (its key order is the file's)."""
        return {
            "source": self.source,
            "target": self.target,
            "task": self.task,
            "features": [vars(feature) for feature in self.features],
            "classes": self.classes,
            "image_shape": self.image_shape,
            "n_rows": self.n_rows,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], where: str = "schema.json") -> Schema:
        """From schema.json's mapping; keys it does not know (a model's `preprocessing`)
        are ignored."""
        try:
            schema = cls(
                source=str(raw["source"]),
                target=str(raw["target"]),
                task=raw["task"],
                features=tuple(Feature(**feature) for feature in raw["features"]),
                classes=raw.get("classes"),
                image_shape=raw.get("image_shape"),
                n_rows=int(raw.get("n_rows", 0)),
            )
        except (KeyError, TypeError) as exc:
            raise UserError(
                f"{where}: not a schema written by `prepare` ({type(exc).__name__}: {exc}); "
                "rerun `dvc repro prepare`"
            ) from None
        if schema.task not in TASKS:
            raise UserError(f"{where}: task: allowed: {', '.join(TASKS)}, got {schema.task!r}")
        return schema

    @classmethod
    def read(cls, path: Path) -> Schema:
        return cls.from_json(io.read_json(path), str(path))

    def write(self, path: Path) -> None:
        io.write_json(path, self.to_json())
