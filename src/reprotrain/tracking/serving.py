"""An MLflow pyfunc wrapper so any saved model serves through `mlflow.pyfunc.load_model`."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

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


def predictions_frame(model: Any, schema: dict[str, Any], rows: pd.DataFrame) -> pd.DataFrame:
    """Predicted labels or values for rows holding the schema's feature columns."""
    features = model.preprocessor.transform(rows)
    predicted = model.predict(features)
    if schema["task"] != "classification":
        return pd.DataFrame({"prediction": predicted.astype(np.float64)})
    classes = schema["classes"]
    frame = pd.DataFrame({"prediction": [classes[index] for index in predicted]})
    proba = model.predict_proba(features)
    for position, label in enumerate(classes):
        frame[f"proba_{label}"] = proba[:, position]
    return frame


class PipelineModel(mlflow.pyfunc.PythonModel):
    """Loads a model directory written by this pipeline; predicts on feature rows."""

    def load_context(self, context: Any) -> None:
        from reprotrain.models.model import load_model

        self.model = load_model(Path(context.artifacts["model"]))
        self.schema = json.loads(Path(context.artifacts["schema"]).read_text())

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return predictions_frame(self.model, self.schema, model_input)

    @staticmethod
    def predict_frame(model_dir: Path, schema: dict[str, Any], rows: pd.DataFrame) -> pd.DataFrame:
        from reprotrain.models.model import load_model

        return predictions_frame(load_model(model_dir), schema, rows)
