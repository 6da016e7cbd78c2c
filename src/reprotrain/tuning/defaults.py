"""`tune.space: auto` and `tune.fixed: auto`: a default search per model, and the check
that a space or fixed value names only keys the model reads.

The CNN's space is the one params.yaml held before `auto`: digits tunes as it did.
"""

from __future__ import annotations

from typing import Any

from reprotrain.config import MODEL_NAMES, TORCH_MODELS, SpaceParam, TuneParams
from reprotrain.config.errors import UserError

AUTO = "auto"
# train.* sections only torch networks read (scikit-learn models fit in one go).
TORCH_SECTIONS = ("optim", "schedule", "early_stopping", "augment", "init_from")


def _log(low: float, high: float, kind: str = "float") -> dict[str, Any]:
    return {"type": kind, "low": low, "high": high, "log": True}


def _choices(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


_NET_LR = _log(0.0003, 0.01)
_DROPOUT = {"type": "float", "low": 0.0, "high": 0.4}
SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "cnn": {
        "optim.lr": _NET_LR,
        "cnn.channels": _choices([8, 16], [16, 32], [32, 64]),
        "cnn.dropout": _DROPOUT,
    },
    "mlp": {
        "optim.lr": _NET_LR,
        "mlp.hidden_sizes": _choices([64], [256], [256, 128]),
        "mlp.dropout": _DROPOUT,
    },
    "zoo": {  # fine-tuning a pretrained net: lower rates than from scratch
        "optim.lr": _log(0.00001, 0.001),
        "optim.weight_decay": _log(0.000001, 0.01),
    },
    "hist_gradient_boosting": {
        "hist_gradient_boosting.learning_rate": _log(0.01, 0.3),
        "hist_gradient_boosting.max_leaf_nodes": _log(4, 64, "int"),
        "hist_gradient_boosting.min_samples_leaf": _log(2, 40, "int"),
        "hist_gradient_boosting.l2_regularization": _log(0.001, 10.0),
    },
    "random_forest": {
        "random_forest.max_depth": _choices(None, 4, 8, 16),
        "random_forest.min_samples_leaf": {"type": "int", "low": 1, "high": 10},
    },
    "logistic_regression": {"logistic_regression.C": _log(0.001, 100.0)},
    "linear_regression": {"linear_regression.alpha": _log(0.001, 1000.0)},
    "svm": {"svm.C": _log(0.01, 1000.0), "svm.gamma": _choices("scale", "auto")},
}
# Nets: quick trials (a 100-epoch augmented cnn takes ~5x longer); the others fit in one go.
FIXED: dict[str, dict[str, Any]] = {
    name: {"augment.enabled": False, "optim.epochs": 15} for name in TORCH_MODELS
}


def reads(model: str, key: str) -> bool:
    """Whether `model` reads train.`key`: its own section, the torch sections for nets,
    and the keys every model shares (imbalance, seeds, ...)."""
    section = key.split(".")[0]
    if section in MODEL_NAMES:
        return section == model
    if section in TORCH_SECTIONS:
        return model in TORCH_MODELS
    return True


def resolve(params: TuneParams, model: str) -> TuneParams:
    """`tune` with `space` and `fixed` as mappings: the model's defaults for `auto`; an
    explicit one must name only keys `model` reads (else it would tune nothing)."""
    if model not in SPACES:
        raise ValueError(f"resolve train.model {model!r} for the data first (models.choice)")
    space: dict[str, Any] = SPACES[model] if isinstance(params.space, str) else params.space
    # a space may search the model itself: a key is read if one of its models reads it
    model_spec = space.get("model")
    models = [model] if model_spec is None else list(dict(model_spec)["choices"] or [model])
    fixed = params.fixed
    if isinstance(fixed, str):  # auto: the nets' quick trials, where a searched model is one
        defaults = {key: value for name in models for key, value in FIXED.get(name, {}).items()}
        fixed = {key: value for key, value in defaults.items() if key not in space}
    for section, entries in (("space", space), ("fixed", fixed)):
        unread = [key for key in entries if not any(reads(name, key) for name in models)]
        if unread:
            raise UserError(
                f"params.yaml: tune.{section}: train.model {' or '.join(models)} never reads "
                f"{', '.join(unread)}; allowed: {_allowed(models)} and the keys every model "
                f"reads (e.g. imbalance); remove them or set tune.{section}: auto"
            )
    specs = {
        key: spec if isinstance(spec, SpaceParam) else SpaceParam.model_validate(spec)
        for key, spec in space.items()
    }
    return params.model_copy(update={"space": specs, "fixed": dict(fixed)})


def _allowed(models: list[str]) -> str:
    sections = [f"{name}.*" for name in models]
    if any(name in TORCH_MODELS for name in models):
        sections += [f"{section}.*" for section in TORCH_SECTIONS]
    return ", ".join(sections)


def space_of(params: TuneParams) -> dict[str, SpaceParam]:
    """The space of resolved tune params (`resolve` first)."""
    if isinstance(params.space, str):
        raise ValueError("tune.space is still 'auto': resolve it for the model first")
    return params.space


def fixed_of(params: TuneParams) -> dict[str, Any]:
    """The fixed values of resolved tune params (`resolve` first)."""
    if isinstance(params.fixed, str):
        raise ValueError("tune.fixed is still 'auto': resolve it for the model first")
    return params.fixed
