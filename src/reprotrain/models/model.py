"""Model registry: torch networks and scikit-learn estimators behind one interface.

Every model has `fit(train, dev) -> history`, `predict`, `predict_proba` (classification)
and `save(directory)`; `load_model(directory)` brings any of them back. Nothing is
pickled: torch weights load with `weights_only=True`, scikit-learn models through skops
with an allow-list of types.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from reprotrain.config.errors import UserError
from reprotrain.config.params import TORCH_MODELS
from reprotrain.data import io
from reprotrain.data.schema import Schema
from reprotrain.models import distributed

if TYPE_CHECKING:
    from reprotrain.config import InitFromParams, TrainParams

log = logging.getLogger(__name__)

BASELINE = "baseline"
STRONG_BASELINE = "strong_baseline"
CONFIG_FILE = "model.json"

Arrays = tuple[np.ndarray, np.ndarray]
# HistGradientBoosting bins each feature on its quantiles: scaling would change nothing but
# cost a copy of the matrix. It computes in float64: fed anything else, it copies again.
UNSCALED = frozenset({"hist_gradient_boosting"})
INPUT_DTYPES = {"hist_gradient_boosting": np.float64}


@dataclass(frozen=True)
class FitOptions:
    """How a fit runs beyond its data; only models that train in epochs (torch) use them."""

    on_epoch: Callable[[dict[str, float]], None] | None = None  # each epoch's history row
    checkpoint: Path | None = None  # resume from / save to this file every epoch
    fingerprint: str = ""  # what the checkpoint belongs to (params, seed, data)
    image_shape: list[int] | None = None  # the schema's, for CNNs and augmentation
    progress: str = "off"  # bar | log | off
    label: str = ""  # which fit this is, on its progress bar ("seed 1 of 3")


class Model(Protocol):
    """What the stages use of a model, torch or scikit-learn alike."""

    name: str
    family: str  # "torch" | "sklearn"
    task: str
    best_epoch: int | None  # the epoch whose weights it keeps (None: no epochs)
    preprocessor: Any  # set by load_model

    def fit(
        self, train: Arrays, dev: Arrays, options: FitOptions | None = None
    ) -> list[dict[str, float]]: ...

    def predict(self, features: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, features: np.ndarray) -> np.ndarray | None: ...

    def save(self, directory: Path) -> None: ...


def input_dtype(model: str) -> type:
    """The dtype of the feature matrix `model` takes as is, without a copy of its own."""
    return INPUT_DTYPES.get(model, np.float32)


def build_model(params: TrainParams, schema: Schema, seed: int) -> Model:
    """The model named in params, configured for this data."""
    n_classes = schema.n_classes if schema.is_classification else 0
    if params.model in TORCH_MODELS:
        return TorchModel.from_params(
            params,
            schema.task,
            n_classes,
            seed,
            schema.image_shape,
            schema.classes,
        )
    return SklearnModel.from_params(params, schema.task, n_classes, seed)


def start_lineage(params: TrainParams) -> dict[str, str] | None:
    """What a train or tune run records about where its weights started: the zoo model
    (architecture, weights file, SHA-256) or the train.init_from checkpoint; None from
    scratch. Reads and checks the files once, before any fit starts."""
    if params.model == "zoo":
        from reprotrain.models import zoo

        return zoo.lineage(params.zoo)
    from reprotrain.models import pretrained

    return pretrained.lineage(params.init_from)


def build_baseline(task: str, n_classes: int) -> SklearnModel:
    """Majority class or mean: the score any model must beat."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if task == "classification":
        return SklearnModel(BASELINE, task, n_classes, DummyClassifier(strategy="prior"))
    return SklearnModel(BASELINE, task, n_classes, DummyRegressor(strategy="mean"))


def build_strong_baseline(task: str, n_classes: int, seed: int) -> SklearnModel:
    """A strong simple model, never tuned: standardized features into logistic regression
    (C 1) or ridge with its alpha chosen by leave-one-out on train (RidgeCV). A model that
    does not beat it clearly is not worth its complexity."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator: Any
    if task == "classification":
        estimator = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    else:
        estimator = RidgeCV(alphas=np.logspace(-3, 3, 13))
    pipeline = make_pipeline(StandardScaler(), estimator)
    return SklearnModel(STRONG_BASELINE, task, n_classes, pipeline)


def save_model(model: Any, preprocessor: Any, directory: Path) -> None:
    """A self-contained model directory: the fitted preprocessor beside the model."""
    model.save(directory)
    preprocessor.save(directory)


def load_model(directory: Path) -> Model:
    """A model with its `preprocessor` attribute: `model.preprocessor.transform(frame)`."""
    from reprotrain.data.features import load_preprocessor

    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise UserError(f"{directory}: not a model directory (no {CONFIG_FILE})")
    config = io.read_json(config_path)
    family = config.get("family") if isinstance(config, dict) else None
    if family not in ("torch", "sklearn"):
        raise UserError(
            f"{config_path}: not a model file this pipeline wrote: 'family' must be torch or "
            f"sklearn, got {family!r}; retrain it (`dvc repro --force train`)"
        )
    model: Model
    if family == "torch":
        model = TorchModel.load(directory, config)
    else:
        model = SklearnModel.load(directory, config)
    model.preprocessor = load_preprocessor(directory)
    return model


def predict_rows(
    model: Model, rows: pd.DataFrame, where: str = "input"
) -> tuple[np.ndarray, np.ndarray | None]:
    """A loaded model on raw rows, through its own preprocessor: predicted class indices or
    values, and class probabilities (None for regression)."""
    features = model.preprocessor.transform(rows, where)
    return model.predict(features), model.predict_proba(features)


def predictions_frame(
    model: Model, schema: Schema, rows: pd.DataFrame, where: str = "input"
) -> pd.DataFrame:
    """`prediction` (a class label or a value) and, for classification, `proba_<class>`."""
    predicted, proba = predict_rows(model, rows, where)
    if proba is None:  # regression
        return pd.DataFrame({"prediction": np.asarray(predicted, dtype=np.float64)})
    classes = schema.labels
    frame = pd.DataFrame({"prediction": [classes[int(index)] for index in predicted]})
    for position, label in enumerate(classes):
        frame[f"proba_{label}"] = proba[:, position]
    return frame


def _full_proba(proba: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """Spread an estimator's probability columns over all class indices."""
    full = np.zeros((len(proba), n_classes), dtype=np.float64)
    full[:, seen.astype(int)] = proba
    return full


class SklearnModel:
    family = "sklearn"
    best_epoch: int | None = None  # fitted in one go

    def __init__(self, name: str, task: str, n_classes: int, estimator: Any):
        self.name, self.task, self.n_classes, self.estimator = name, task, n_classes, estimator
        self.preprocessor: Any = None  # set by load_model

    @classmethod
    def from_params(cls, params: TrainParams, task: str, n_classes: int, seed: int):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        estimator = ESTIMATORS[params.model](params, task, seed)
        steps = [estimator] if params.model in UNSCALED else [StandardScaler(), estimator]
        return cls(params.model, task, n_classes, make_pipeline(*steps))

    def fit(
        self, train: Arrays, dev: Arrays, options: FitOptions | None = None
    ) -> list[dict[str, float]]:
        """Fit on train; dev and the options are for models with epochs."""
        self.estimator.fit(*train)
        return []

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.estimator.predict(features)

    def predict_proba(self, features: np.ndarray) -> np.ndarray | None:
        if self.task != "classification":
            return None
        proba = self.estimator.predict_proba(features)
        return _full_proba(proba, self.estimator.classes_, self.n_classes)

    def save(self, directory: Path) -> None:
        from reprotrain.data.features import dump_skops

        directory.mkdir(parents=True, exist_ok=True)
        dump_skops(self.estimator, directory / "model.skops")
        config = {
            "family": self.family,
            "name": self.name,
            "task": self.task,
            "n_classes": self.n_classes,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))

    @classmethod
    def load(cls, directory: Path, config: dict[str, Any]) -> SklearnModel:
        from reprotrain.data.features import load_skops

        estimator = load_skops(directory / "model.skops", "model file")
        return cls(config["name"], config["task"], config["n_classes"], estimator)


def _class_weight(params: TrainParams) -> str | None:
    return "balanced" if params.imbalance == "class_weight" else None


def _needs(task: str, model: str, wanted: str, instead: str) -> None:
    if task != wanted:
        raise UserError(
            f"params.yaml: train.model: {model} needs a {wanted} task; for {task} use {instead}"
        )


def _logistic(params: TrainParams, task: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    _needs(task, "logistic_regression", "classification", "linear_regression or mlp")
    section = params.logistic_regression
    common = {
        "max_iter": section.max_iter,
        "random_state": seed,
        "class_weight": _class_weight(params),
    }
    if section.penalty == "none":
        return LogisticRegression(C=np.inf, **common)
    l1_ratio = 1.0 if section.penalty == "l1" else 0.0
    solver = "saga" if section.penalty == "l1" else "lbfgs"
    return LogisticRegression(C=section.C, l1_ratio=l1_ratio, solver=solver, **common)


def _linear(params: TrainParams, task: str, seed: int) -> Any:
    """Least squares, ridge (L2), lasso (L1) or elastic net by alpha and l1_ratio."""
    from sklearn.linear_model import ElasticNet, LinearRegression, Ridge

    _needs(task, "linear_regression", "regression", "logistic_regression or mlp")
    section = params.linear_regression
    if section.alpha == 0:
        return LinearRegression()
    if section.l1_ratio == 0:
        return Ridge(alpha=section.alpha)
    return ElasticNet(
        alpha=section.alpha, l1_ratio=section.l1_ratio, random_state=seed, max_iter=10_000
    )


def _svm(params: TrainParams, task: str, seed: int) -> Any:
    from sklearn.svm import SVC, SVR

    section = params.svm
    if task == "regression":
        return SVR(C=section.C, kernel=section.kernel, gamma=section.gamma)
    return SVC(
        C=section.C,
        kernel=section.kernel,
        gamma=section.gamma,
        probability=True,
        class_weight=_class_weight(params),
        random_state=seed,
    )


def n_jobs() -> int:
    """Workers for scikit-learn's joblib-parallel models (random forest): `base.threads`,
    which `training.fitting.configure_threads` puts in OMP_NUM_THREADS for every library
    of the stage; 1 where nothing set it."""
    return int(os.environ.get("OMP_NUM_THREADS", "1"))


def _random_forest(params: TrainParams, task: str, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    section = params.random_forest
    common = {
        "n_estimators": section.n_estimators,
        "max_depth": section.max_depth,
        "min_samples_leaf": section.min_samples_leaf,
        "random_state": seed,
        "n_jobs": n_jobs(),
    }
    if task == "regression":
        return RandomForestRegressor(**common)
    return RandomForestClassifier(class_weight=_class_weight(params), **common)


def _hist_gradient_boosting(params: TrainParams, task: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    section = params.hist_gradient_boosting
    common = {
        "learning_rate": section.learning_rate,
        "max_iter": section.max_iter,
        "max_leaf_nodes": section.max_leaf_nodes,
        "min_samples_leaf": section.min_samples_leaf,
        "l2_regularization": section.l2_regularization,
        "early_stopping": section.early_stopping,
        "random_state": seed,
    }
    if task == "regression":
        return HistGradientBoostingRegressor(**common)
    return HistGradientBoostingClassifier(class_weight=_class_weight(params), **common)


ESTIMATORS = {
    "logistic_regression": _logistic,
    "linear_regression": _linear,
    "svm": _svm,
    "random_forest": _random_forest,
    "hist_gradient_boosting": _hist_gradient_boosting,
}


class TorchModel:
    """A torch network with standardized inputs (and targets, for regression)."""

    family = "torch"

    def __init__(
        self,
        name: str,
        task: str,
        n_classes: int,
        config: dict[str, Any],
        params: TrainParams | None = None,
        seed: int = 0,
    ):
        self.name, self.task, self.n_classes = name, task, n_classes
        self.config = config  # everything needed to rebuild the network
        self.params, self.seed = params, seed
        self.classes: list[Any] | None = None  # the label set (checked when fine-tuning)
        self.init_from: dict[str, str] | None = None  # the checkpoint it started from
        self.net: Any = None
        self.best_epoch: int | None = None
        self.preprocessor: Any = None  # set by load_model

    @classmethod
    def from_params(
        cls,
        params: TrainParams,
        task: str,
        n_classes: int,
        seed: int,
        image_shape=None,
        classes: list[Any] | None = None,
    ) -> TorchModel:
        if params.model == "zoo":
            from reprotrain.models import zoo

            model = cls(
                "zoo", task, n_classes, zoo.net_config(params.zoo, image_shape), params, seed
            )
            model.classes = classes
            return model
        config = {"kind": params.model, **getattr(params, params.model).model_dump()}
        if params.model == "cnn":
            if not image_shape:
                raise UserError(
                    "params.yaml: train.model: cnn needs image-shaped data (a schema with "
                    "image_shape, e.g. sklearn:digits or an image folder); got tabular data"
                )
            config["image_shape"] = list(image_shape)
        model = cls(params.model, task, n_classes, config, params, seed)
        model.classes = classes
        return model

    # -- training ------------------------------------------------------------------------

    def fit(
        self, train: Arrays, dev: Arrays, options: FitOptions | None = None
    ) -> list[dict[str, float]]:
        """Train on train, early-stopping on dev; ends with the best dev epoch's weights."""
        import torch

        from reprotrain.models import torch_loop as training
        from reprotrain.models.augment import make_augment

        params, options = self.params, options or FitOptions()
        if params is None:
            raise RuntimeError(f"{self.name}: a model loaded from disk is not trained again")
        image_shape = options.image_shape
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        features, targets = train
        if self.task == "regression":
            self.config["target_mean"] = float(targets.mean())
            self.config["target_std"] = float(targets.std() + 1e-6)
        self.net = self._build(features.shape[1])
        # Augmentation (shift, rotate, noise) is defined on images only: on tabular data
        # the setting is skipped, so one params.yaml serves both kinds of data.
        augmenting = params.augment.enabled and bool(image_shape)
        if params.augment.enabled and not augmenting:
            log.info("train.augment.enabled: skipped, the data is tabular (no image_shape)")
        if self.name == "zoo":  # the model's own input statistics (preprocessor_config.json)
            backbone, fingerprint = self._start_from_zoo(params, options.fingerprint)
        else:
            images = self.name == "cnn" or augmenting
            self.net[0].fit(torch.as_tensor(features), per_feature=not images)
            backbone, fingerprint = self._start_from_checkpoint(
                params.init_from, options.fingerprint
            )
        # The std of every value needs a full-size temporary: only when augmentation uses it.
        pixel_std = float(features.std()) if augmenting else 1.0
        augment = (
            make_augment(params.augment, image_shape, pixel_std)
            if augmenting and image_shape
            else None
        )
        device = resolve_device(params.device)
        distributed.start(device)  # under torchrun: join the process group (once)
        self.net.to(device)
        if self.name == "zoo" and device.type == "cuda":  # its inputs arrive channels-last
            self.net.to(memory_format=torch.channels_last)
        loop = training.LoopConfig(
            optim=params.optim,
            stopping=params.early_stopping,
            schedule=params.schedule,
            augment=augment,
            mixed_precision=params.mixed_precision,
            compile=params.compile,
            progress=options.progress,
            label=options.label,
            checkpoint=options.checkpoint,
            fingerprint=fingerprint,
            loss_scale=self.config.get("target_std", 1.0) ** 2,
            backbone=backbone,
        )
        result = training.fit(
            self.net,
            self._loss_fn(targets, device),
            self._score_fn(),
            self._tensors(train, device),
            self._tensors(dev, device),
            loop,
            generator,
            options.on_epoch,
        )
        self.net.to("cpu")
        self.best_epoch, self.stop_reason = result.best_epoch, result.stop_reason
        self.resumed_from = result.resumed_from
        return result.history

    def _start_from_checkpoint(self, init: InitFromParams, fingerprint: str) -> tuple[Any, str]:
        """Load train.init_from into the fresh network (input statistics included).

        Returns the backbone to freeze (or None) and the resume fingerprint, which now
        also covers the checkpoint's bytes.
        """
        import hashlib

        from reprotrain.models import pretrained

        if init.mode == "none":
            return None, fingerprint
        checkpoint = pretrained.load(init.path)
        target = pretrained.Target(init.mode, self.task, self.classes, self.config, self.n_features)
        pretrained.initialize(self.net, checkpoint, target)
        self.init_from = {"mode": init.mode, "path": init.path, "sha256": checkpoint.sha256}
        combined = hashlib.sha256(f"{fingerprint}:{checkpoint.sha256}".encode()).hexdigest()
        return pretrained.backbone(self.net, init), combined

    def _start_from_zoo(self, params: TrainParams, fingerprint: str) -> tuple[Any, str]:
        """The zoo model's pretrained weights in all but the new head (weights: pretrained);
        the backbone to freeze, and the resume fingerprint covering the weights' bytes."""
        import hashlib

        from reprotrain.models import pretrained, zoo

        if params.zoo.weights == "random":
            return pretrained.backbone(self.net, params.zoo), fingerprint
        path, digest = zoo.load_pretrained(self.net, params.zoo.source)
        self.init_from = {"mode": "zoo", "path": str(path), "sha256": digest}
        combined = hashlib.sha256(f"{fingerprint}:{digest}".encode()).hexdigest()
        return pretrained.backbone(self.net, params.zoo), combined

    def _build(self, n_features: int) -> Any:
        from torch import nn

        from reprotrain.models.nets import Standardize, build_net

        self.n_features = n_features
        n_outputs = self.n_classes if self.task == "classification" else 1
        if self.config["kind"] == "zoo":
            from reprotrain.models import zoo

            return zoo.build_net(self.config, n_outputs)
        net_config = {k: v for k, v in self.config.items() if not k.startswith("target_")}
        body = build_net({**net_config, "n_inputs": n_features, "n_outputs": n_outputs})
        return nn.Sequential(Standardize(n_features), body)

    def _loss_fn(self, targets: np.ndarray | None = None, device: Any = None) -> Any:
        import torch
        from torch import nn

        if self.task != "classification":
            return nn.MSELoss()
        use_weights = self.params is not None and self.params.imbalance == "class_weight"
        if not use_weights or targets is None:
            return nn.CrossEntropyLoss()
        weights = balanced_class_weights(targets, self.n_classes)
        return nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))

    def _score_fn(self):
        if self.task == "classification":
            return lambda outputs, y: float((outputs.argmax(1) == y).float().mean())

        def r2(outputs, y) -> float:
            residual = ((outputs - y) ** 2).sum()
            total = ((y - y.mean()) ** 2).sum()
            return float(1 - residual / total) if float(total) > 0 else 0.0

        return r2

    def _tensors(self, data: Arrays, device: Any) -> tuple[Any, Any]:
        import torch

        features, targets = data
        # as_tensor: on the CPU, a float32 matrix is shared, not copied.
        x = torch.as_tensor(features, dtype=torch.float32, device=device)
        if self.task == "classification":
            return x, torch.as_tensor(targets, dtype=torch.long, device=device)
        scaled = (targets - self.config["target_mean"]) / self.config["target_std"]
        return x, torch.as_tensor(scaled, dtype=torch.float32, device=device).unsqueeze(1)

    # -- inference -----------------------------------------------------------------------

    def _outputs(self, features: np.ndarray) -> Any:
        import torch

        from reprotrain.models.torch_loop import predict_outputs

        return predict_outputs(self.net, torch.as_tensor(features, dtype=torch.float32))

    def predict(self, features: np.ndarray) -> np.ndarray:
        outputs = self._outputs(features)
        if self.task == "classification":
            return outputs.argmax(1).numpy()
        scaled = outputs.squeeze(1).numpy().astype(np.float64)
        return scaled * self.config["target_std"] + self.config["target_mean"]

    def predict_proba(self, features: np.ndarray) -> np.ndarray | None:
        if self.task != "classification":
            return None
        return self._outputs(features).softmax(1).numpy().astype(np.float64)

    # -- persistence ---------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), directory / "weights.pt")
        config = {
            "family": self.family,
            "name": self.name,
            "task": self.task,
            "n_classes": self.n_classes,
            "net": self.config,
            "n_features": self.n_features,
        }
        if self.init_from is not None:  # lineage: the pretrained checkpoint it started from
            config["init_from"] = self.init_from
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))

    @classmethod
    def load(cls, directory: Path, config: dict[str, Any]) -> TorchModel:
        import pickle

        import torch

        model = cls(config["name"], config["task"], config["n_classes"], config["net"])
        model.net = model._build(config["n_features"])
        path = directory / "weights.pt"
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
            model.net.load_state_dict(state)
        except pickle.UnpicklingError:
            raise UserError(
                f"{path}: refusing to load; the file holds objects other than tensors "
                "(loading it could run code)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - truncated zip, wrong shapes, ...
            raise UserError(
                f"{path}: corrupt or unreadable model file ({type(exc).__name__})"
            ) from None
        model.net.eval()
        return model


def balanced_class_weights(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """n_samples / (n_classes * count) per class, as scikit-learn's 'balanced' (0 if absent)."""
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    weights = np.zeros(n_classes)
    present = counts > 0
    weights[present] = len(targets) / (present.sum() * counts[present])
    return weights


def resolve_device(requested: str) -> Any:
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return distributed.cuda_device()
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "params.yaml: train.device: 'cuda' requested but no CUDA device found; "
            "allowed here: auto, cpu"
        )
    if requested == "mps" and not torch.backends.mps.is_available():
        raise UserError(
            "params.yaml: train.device: 'mps' requested but MPS is not available; "
            "allowed here: auto, cpu"
        )
    return distributed.cuda_device() if requested == "cuda" else torch.device(requested)
