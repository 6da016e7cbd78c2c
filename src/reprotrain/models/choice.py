"""`train.model: auto`: which models suit the data.

Image-shaped data (a schema with `image_shape`: digits, an image folder) gets the CNN.
Tabular data gets gradient boosting (strong on most tables) and a scaled linear model
(logistic regression or ridge), the simplest, kept unless another beats it beyond the noise,
chosen between by the `train` stage on rows they did not see (dev, or out of fold). Small
tables (at most SMALL_TABLE_ROWS rows to fit on) also get a random forest and an RBF support
vector machine: often stronger there, cheap there, and too slow beyond (an SVM's fit grows
with the square of the rows).
"""

from __future__ import annotations

from reprotrain.config.params import AUTO
from reprotrain.data.schema import Schema

IMAGE_MODEL = "cnn"
TABULAR_MODEL = "hist_gradient_boosting"
# Beside boosting, the flexible models auto also fits on small tables.
OTHER_TABULAR_MODELS = ["random_forest", "svm"]
SMALL_TABLE_ROWS = 5000  # rows a model is fitted on (train, or train+dev under folds)
LINEAR_MODELS = {"classification": "logistic_regression", "regression": "linear_regression"}


def linear_model(task: str) -> str:
    """The scaled linear model for a task: logistic regression or ridge."""
    return LINEAR_MODELS[task]


def candidates(model: str, schema: Schema, n_rows: int = 0) -> list[str]:
    """The models `train.model` stands for on this data: itself, or auto's candidates
    (the first is the one `tune` searches, the last the simplest). `n_rows`: the rows they
    are fitted on; above SMALL_TABLE_ROWS, no forest or SVM."""
    if model != AUTO:
        return [model]
    if schema.image_shape:
        return [IMAGE_MODEL]
    others = OTHER_TABULAR_MODELS if n_rows <= SMALL_TABLE_ROWS else []
    return [TABULAR_MODEL, *others, linear_model(schema.task)]


def searchable(model: str) -> list[str]:
    """The models `tune` may search under `train.model` before the data is known: itself,
    or under auto the CNN (image-shaped data) and gradient boosting (tables)."""
    return [IMAGE_MODEL, TABULAR_MODEL] if model == AUTO else [model]


def resolve(model: str, schema: Schema) -> str:
    """The one model `tune` searches: the named model, or auto's first candidate."""
    return candidates(model, schema)[0]
