"""MLflow models-from-code entry point: MLflow runs this file to get the model object.

Not imported by the pipeline; `tracking.log_model` passes its path to MLflow.
"""

import mlflow

from reprotrain.tracking.serving import PipelineModel

mlflow.models.set_model(PipelineModel())
