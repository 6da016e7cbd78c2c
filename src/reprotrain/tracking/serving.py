"""An MLflow pyfunc wrapper so any saved model serves through `mlflow.pyfunc.load_model`."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from reprotrain.data.schema import Schema

REQUIREMENTS = ("torch", "scikit-learn", "skops", "pandas", "numpy", "pyarrow")


def pip_requirements() -> list[str]:
    pins = []
    for name in REQUIREMENTS:
        try:
            version = metadata.version(name).split("+")[0]
            pins.append(f"{name}=={version}")
        except metadata.PackageNotFoundError:
            continue
    return pins


class PipelineModel(PythonModel):
    """Loads a model directory written by this pipeline; predicts on feature rows."""

    def load_context(self, context: Any) -> None:
        from reprotrain.models.model import load_model

        self.model = load_model(Path(context.artifacts["model"]))
        raw = json.loads(Path(context.artifacts["schema"]).read_text())
        self.schema = Schema.from_json(raw, "the model's schema.json")

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        from reprotrain.models.model import predictions_frame

        return predictions_frame(self.model, self.schema, model_input)

    @staticmethod
    def predict_frame(model_dir: Path, schema: Schema, rows: pd.DataFrame) -> pd.DataFrame:
        from reprotrain.models.model import load_model, predictions_frame

        return predictions_frame(load_model(model_dir), schema, rows)
