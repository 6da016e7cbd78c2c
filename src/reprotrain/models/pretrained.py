"""Start a torch network from a pretrained checkpoint: fine-tuning and transfer learning.

A checkpoint is either a model directory written by this pipeline (`weights.pt` with
`model.json` and usually `schema.json` beside it), or one state_dict file (`*.pt`). A file
with a `model.json` in its folder is checked against that config; a bare file is checked
against the network `train.model` and its section describe, layer by layer. Its keys may
be those of the whole network (`0.mean`, `1.features.0.weight`, ...) or of the body alone
(`features.0.weight`, as `CNN(...).state_dict()` gives), in which case the input
statistics are fit on the training split.

Modes:
- `finetune`: every layer, the output layer included, starts from the checkpoint; the
  label set must be the checkpoint's.
- `transfer`: the output layer is new (any label set, or regression); the rest, the
  backbone, starts from the checkpoint.

Input statistics (the `Standardize` buffers) are the checkpoint's, not refit on the new
training split: the pretrained filters were learned on inputs scaled that way, and a
refit on a few rows (the case fine-tuning is for) would be a noisy estimate that shifts
every first-layer response.

Loading never runs code: `torch.load(weights_only=True)` refuses pickled objects.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprotrain.config.errors import UserError, brief
from reprotrain.data import io
from reprotrain.data.io import file_digest

if TYPE_CHECKING:
    from torch import nn

    from reprotrain.config import InitFromParams, ZooParams
    from reprotrain.models.torch_loop import Backbone

log = logging.getLogger(__name__)

KEY = "params.yaml: train.init_from.path"
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "model.json"
SCHEMA_FILE = "schema.json"
STANDARDIZE = "0"  # the network's first module: the input statistics
BODY = "1"  # then the MLP or CNN
# train.* keys that change the pretrained layers' shapes: fixed by the checkpoint.
ARCHITECTURE_KEYS = ("model", "mlp.hidden_sizes", "cnn.channels", "cnn.kernel_size", "cnn.hidden")
MAX_LISTED = 4  # mismatching layers named in the error line


@dataclass(frozen=True)
class Checkpoint:
    weights: Path  # the state_dict file
    sha256: str  # of `weights`
    state: dict[str, Any]  # parameter and buffer name -> tensor
    config: dict[str, Any] | None = None  # model.json beside the weights, if any
    classes: list[Any] | None = None  # the label set (schema.json beside it), if known


def weights_file(path: str | Path) -> Path:
    """The state_dict file `path` names: the file itself or a model directory's weights.pt."""
    path = Path(path)
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise UserError(
                f"{KEY}: a folder must be a model directory holding {WEIGHTS_FILE} and "
                f"{CONFIG_FILE}, got {str(path)!r} without {WEIGHTS_FILE}"
            )
        return weights
    if not path.is_file():
        raise UserError(
            f"{KEY}: a model directory or a state_dict file, got {str(path)!r} (not found)"
        )
    return path


def digest(path: str | Path) -> str:
    """SHA-256 of the checkpoint's weights file (what MLflow records)."""
    return file_digest(weights_file(path))


def read_state_dict(weights: Path, key: str = KEY) -> dict[str, Any]:
    """A state_dict file's tensors, read safely: a file holding pickled objects is refused
    without running them. `key` is the param the one-line errors name."""
    import torch

    try:
        state = torch.load(weights, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise UserError(
            f"{key}: refusing to load {weights}: it holds objects other than tensors "
            "(loading it could run code); allowed: a state_dict saved with torch.save"
        ) from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, not a torch file, ...
        raise UserError(
            f"{key}: a torch state_dict file, got {weights}, which torch cannot read "
            f"({type(exc).__name__})"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(name, str) and isinstance(value, torch.Tensor) for name, value in state.items()
    ):
        raise UserError(
            f"{key}: a state_dict (layer name -> tensor), got {weights} holding a "
            f"{type(state).__name__} of other values"
        )
    return state


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint safely: tensors only, never pickled code."""
    weights = weights_file(path)
    state = read_state_dict(weights)
    return Checkpoint(
        weights,
        file_digest(weights),
        state,
        io.read_json_if_present(weights.parent / CONFIG_FILE, KEY),
        (io.read_json_if_present(weights.parent / SCHEMA_FILE, KEY) or {}).get("classes"),
    )


# --- matching the configured network ---------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What the new model is: the checkpoint must fit it."""

    mode: str  # finetune | transfer
    task: str
    classes: list[Any] | None
    config: dict[str, Any]  # the network config (kind, layer sizes, image_shape)
    n_features: int


def head_prefix(net: nn.Sequential) -> str:
    """State-dict prefix of the output layer, e.g. '1.head.5.'."""
    return f"{BODY}.{net[1].output_name}."


def _shape(tensor: Any) -> str:
    return str(tuple(tensor.shape))  # (16, 128), (16,)


def _config_mismatches(config: dict[str, Any], target: Target) -> list[str]:
    """Differences model.json shows at once: network kind, task, input shape."""
    net = config.get("net", {})
    if config.get("family") != "torch" or net.get("kind") != target.config["kind"]:
        kind = net.get("kind", config.get("name"))
        return [f"network: checkpoint {kind!r}, train.model {target.config['kind']!r}"]
    found = []
    if target.mode == "finetune" and config.get("task") != target.task:
        found.append(f"task: checkpoint {config.get('task')}, data {target.task}")
    image, wanted = net.get("image_shape"), target.config.get("image_shape")
    if config.get("n_features") != target.n_features or image != wanted:
        images = f" (image {image} vs {wanted})" if image else ""
        found.append(
            f"input: checkpoint {config.get('n_features')} features, "
            f"data {target.n_features}{images}"
        )
    return found


def normalize_keys(state: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """A body-only state_dict ('features.0.weight') gets the network's body prefix."""
    if any(key.split(".", 1)[0] in (STANDARDIZE, BODY) for key in state):
        return state
    prefixed = {f"{BODY}.{key}": value for key, value in state.items()}
    return prefixed if set(prefixed) & set(expected) else state


def layer_mismatches(
    state: dict[str, Any], expected: dict[str, Any], skip: str | None
) -> list[str]:
    """Layers whose names or shapes differ, skipping keys under `skip` (a new head)."""
    wanted = {k: v for k, v in expected.items() if not (skip and k.startswith(skip))}
    given = {k: v for k, v in state.items() if not (skip and k.startswith(skip))}
    found = []
    for key, tensor in wanted.items():
        if key not in given:
            if not key.startswith(f"{STANDARDIZE}."):  # input statistics: fit when absent
                found.append(f"{key}: missing from the checkpoint, model {_shape(tensor)}")
        elif given[key].shape != tensor.shape:
            found.append(f"{key}: checkpoint {_shape(given[key])}, model {_shape(tensor)}")
    found += [f"{key}: not in the model" for key in given if key not in wanted]
    return found


def _one_line(weights: Path, found: list[str], hint: str = "") -> str:
    listed = "; ".join(found[:MAX_LISTED])
    more = f"; and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
    return (
        f"{KEY}: the checkpoint must match train.model and its layer sizes, got {weights} "
        f"with {listed}{more}{hint}"
    )


def _other_classes(checkpoint: Checkpoint, target: Target) -> bool:
    if target.mode != "finetune" or checkpoint.classes is None or not target.classes:
        return False
    return list(checkpoint.classes) != list(target.classes)


def check(checkpoint: Checkpoint, net: nn.Sequential, target: Target) -> dict[str, Any]:
    """The checkpoint's tensors to load into `net`, after checking they fit.

    Raises a one-line UserError naming the mismatching layers and shapes.
    """
    expected = net.state_dict()
    state = normalize_keys(checkpoint.state, expected)
    head = head_prefix(net)
    skip = head if target.mode == "transfer" else None
    found = _config_mismatches(checkpoint.config, target) if checkpoint.config else []
    if not found or not found[0].startswith("network:"):  # same kind: compare layers
        found += layer_mismatches(state, expected, skip)
    if found:
        head_only = all(item.startswith(head) for item in found)
        hint = " (a new label set needs mode: transfer)" if head_only and not skip else ""
        raise UserError(_one_line(checkpoint.weights, found, hint))
    if _other_classes(checkpoint, target):
        raise UserError(
            "params.yaml: train.init_from.mode: finetune keeps the checkpoint's output "
            f"layer and so its classes {brief(checkpoint.classes or [])}, got data with "
            f"classes {brief(target.classes or [])} (a new label set needs mode: transfer)"
        )
    return {k: v for k, v in state.items() if not (skip and k.startswith(skip))}


def initialize(net: nn.Sequential, checkpoint: Checkpoint, target: Target) -> None:
    """Load the checkpoint into `net`: everything, or all but a new output layer."""
    tensors = check(checkpoint, net, target)
    net.load_state_dict(tensors, strict=False)
    log.info(
        "%s from %s (sha256 %s): %d tensors loaded",
        target.mode,
        checkpoint.weights,
        checkpoint.sha256[:12],
        len(tensors),
    )


def backbone(net: nn.Sequential, params: InitFromParams | ZooParams) -> Backbone | None:
    """The layers outside the output layer, frozen first and at their own lr; None when
    they train like the rest (no frozen epochs, the same lr)."""
    from reprotrain.models.torch_loop import Backbone

    if params.freeze_epochs == 0 and params.backbone_lr_factor == 1.0:
        return None
    head = head_prefix(net)
    modules = tuple(
        name
        for name, module in net.named_modules()
        if name and not f"{name}.".startswith(head) and _holds_state(module)
    )
    return Backbone(modules, params.freeze_epochs, params.backbone_lr_factor)


def _holds_state(module: nn.Module) -> bool:
    """Whether the module itself (not its children) has parameters or buffers."""
    own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    return bool(own)


def lineage(params: InitFromParams) -> dict[str, str] | None:
    """What the run records about its starting point (None: trained from scratch).

    Reads the checkpoint once, as every fit will: a file that would be refused (pickled
    code, not a state_dict) fails here, once, before any training or trial starts."""
    if params.mode == "none":
        return None
    checkpoint = load(params.path)
    info = {"mode": params.mode, "path": params.path, "sha256": checkpoint.sha256}
    if params.mlflow_run_id:
        info["mlflow_run_id"] = params.mlflow_run_id
    return info
