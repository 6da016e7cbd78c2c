"""Pretrained image models from Hugging Face transformers, read from local files only.

`train.model: zoo` builds the architecture a model folder's `config.json` describes
(`AutoModelForImageClassification.from_config`: ResNet, ConvNeXt, ViT, EfficientNet, ...)
with a new classifier head sized to the data's classes, and loads the folder's weights
(`model.safetensors`, or a state_dict `.pt` read with `weights_only`) into everything but
that head. Names and shapes are compared first: the head is the one allowed difference,
anything else is a one-line error. The input size, mean and std are the model's own
(`preprocessor_config.json`); pixels are scaled and normalised inside the network, on the
device. A source `hf:<owner>/<name>` is read from the local Hugging Face cache
(`snapshot_download(local_files_only=True)`): nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from reprotrain.config.errors import UserError
from reprotrain.config.params import HUB_PREFIX
from reprotrain.data import io
from reprotrain.data.io import file_digest

if TYPE_CHECKING:
    from reprotrain.config import ZooParams

log = logging.getLogger(__name__)

KEY = "params.yaml: train.zoo.source"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
# Looked for in this order; safetensors holds tensors only, the .pt/.bin are read with
# torch.load(weights_only=True), which refuses pickled objects.
WEIGHT_FILES = ("model.safetensors", "weights.pt", "pytorch_model.bin")
HEAD = "classifier"  # transformers' image classifiers name their output module so
# A batch-norm counter, absent from some released checkpoints; only used without momentum.
OPTIONAL_KEYS = ("num_batches_tracked",)
MAX_LISTED = 3  # key names shown per kind of mismatch
EXAMPLE_FETCH = "hf download microsoft/resnet-18 --local-dir pretrained/resnet-18"


# --- where the files are ----------------------------------------------------------------


def resolve(source: str) -> Path:
    """The model folder `source` names: under pretrained/, or a snapshot in the HF cache."""
    if source.startswith(HUB_PREFIX):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        repo_id = source.removeprefix(HUB_PREFIX)
        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except LocalEntryNotFoundError:
            raise UserError(
                f"{KEY}: {repo_id} is not in the local Hugging Face cache (nothing is "
                f"downloaded at run time), got {source!r}; fetch it once: `hf download {repo_id}`"
            ) from None
    folder = Path(source)
    if not (folder / CONFIG_FILE).is_file():
        raise UserError(
            f"{KEY}: a model folder holding {CONFIG_FILE}, {PREPROCESSOR_FILE} and "
            f"model.safetensors, got {source!r} without {CONFIG_FILE}; fetch one once, "
            f"e.g. `{EXAMPLE_FETCH}`"
        )
    return folder


def weights_path(folder: Path, source: str) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise UserError(
        f"{KEY}: the weights belong in {folder / WEIGHT_FILES[0]} (or "
        f"{', '.join(WEIGHT_FILES[1:])}), got {source!r} without them; fetch them once, "
        f"e.g. `{EXAMPLE_FETCH}`, or set "
        "train.zoo.weights: random to train the architecture from scratch"
    )


# --- what the model expects -------------------------------------------------------------


def _size(preprocessor: dict[str, Any], path: Path) -> list[int]:
    """[height, width] the model was trained at: the crop when it crops, else the resize."""
    size = preprocessor.get("crop_size") if preprocessor.get("do_center_crop") else None
    size = size or preprocessor.get("size")
    if isinstance(size, int):
        return [size, size]
    if isinstance(size, dict) and "height" in size and "width" in size:
        return [int(size["height"]), int(size["width"])]
    if isinstance(size, dict) and "shortest_edge" in size:
        return [int(size["shortest_edge"])] * 2
    raise UserError(f"{KEY}: {path}: 'size' must give height and width, got {size!r}")


def preprocessing(folder: Path) -> dict[str, Any]:
    """Input size, pixel scale, mean and std from the folder's preprocessor_config.json."""
    path = folder / PREPROCESSOR_FILE
    preprocessor = io.read_json_if_present(path, KEY)
    if not isinstance(preprocessor, dict):
        raise UserError(
            f"{KEY}: the model's input size, mean and std belong in {path}, got a folder "
            f"without it; fetch the whole model folder once (e.g. `{EXAMPLE_FETCH}`) or write "
            'it: {"size": {"height": 224, "width": 224}, "image_mean": [...], "image_std": [...]}'
        )
    do_rescale = preprocessor.get("do_rescale", True)
    do_normalize = preprocessor.get("do_normalize", True)
    mean = preprocessor.get("image_mean") if do_normalize else None
    std = preprocessor.get("image_std") if do_normalize else None
    return {
        "size": _size(preprocessor, path),
        "scale": float(preprocessor.get("rescale_factor", 1 / 255)) if do_rescale else 1.0,
        "mean": [float(value) for value in mean] if mean is not None else None,
        "std": [float(value) for value in std] if std is not None else None,
    }


def net_config(params: ZooParams, image_shape: list[int] | None) -> dict[str, Any]:
    """Everything that rebuilds the network without the source folder: the architecture's
    config, the input statistics and the image shape (saved in model.json)."""
    folder = resolve(params.source)
    architecture = io.read_json_if_present(folder / CONFIG_FILE, KEY)
    if not isinstance(architecture, dict) or "model_type" not in architecture:
        raise UserError(
            f"{KEY}: {folder / CONFIG_FILE} must be a transformers config with 'model_type', "
            f"got {type(architecture).__name__}"
        )
    inputs = preprocessing(folder)
    channels = int(architecture.get("num_channels", 3))
    wanted = [channels, *inputs["size"]]
    if list(image_shape or []) != wanted:
        mode = "rgb" if channels == 3 else "grayscale"
        raise UserError(
            f"params.yaml: prepare.image: {params.source} takes {channels}x{wanted[1]}x"
            f"{wanted[2]} images (its {PREPROCESSOR_FILE}), got data of shape "
            f"{image_shape or 'tabular'}; set prepare.image.size: [{wanted[1]}, {wanted[2]}] "
            f"and prepare.image.mode: {mode}"
        )
    mean = inputs["mean"] or [0.0] * channels
    std = inputs["std"] or [1.0] * channels
    return {
        "kind": "zoo",
        "source": params.source,
        "image_shape": wanted,
        "architecture": architecture,
        "scale": inputs["scale"],
        "mean": mean,
        "std": std,
    }


# --- the network ------------------------------------------------------------------------


class PixelInput(nn.Module):
    """Flat pixel rows (0-255) as the normalised images the model was trained on:
    (B, C*H*W) -> (B, C, H, W), channels-last on CUDA (faster convolutions there)."""

    def __init__(self, image_shape: list[int], scale: float, mean: list[float], std: list[float]):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.scale = scale
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        images = rows.view(len(rows), *self.image_shape) * self.scale  # (B, C, H, W)
        images = (images - self.mean) / self.std
        if images.is_cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


class ImageClassifier(nn.Module):
    """A transformers image classifier as a plain module: images -> logits (B, out)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.output_name = f"model.{HEAD}"  # the head a new label set replaces

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=images).logits


def build_net(config: dict[str, Any], n_outputs: int) -> nn.Sequential:
    """The architecture in `config` (random weights) with an `n_outputs` head."""
    from transformers import AutoConfig, AutoModelForImageClassification

    architecture = dict(config["architecture"])
    model_type = architecture.pop("model_type")
    for label_key in ("id2label", "label2id", "num_labels"):  # the data's, not ImageNet's
        architecture.pop(label_key, None)
    try:
        hf_config = AutoConfig.for_model(model_type, num_labels=n_outputs, **architecture)
        model = AutoModelForImageClassification.from_config(hf_config)
    except (ValueError, KeyError) as exc:
        raise UserError(
            f"{KEY}: an image-classification architecture transformers knows (ResNet, "
            f"ConvNeXt, ViT, EfficientNet, ...), got {config['source']!r} of model_type "
            f"{model_type!r} ({str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(getattr(model, HEAD, None), nn.Module):
        raise UserError(
            f"{KEY}: an architecture whose output layer is `{HEAD}`, got {type(model).__name__}"
        )
    pixels = PixelInput(config["image_shape"], config["scale"], config["mean"], config["std"])
    return nn.Sequential(pixels, ImageClassifier(model))


# --- the pretrained weights -------------------------------------------------------------


def _listed(kind: str, names: list[str]) -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return f"{len(names)} {kind} ({', '.join(names[:MAX_LISTED])}{more})"


def key_mismatches(state: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Missing, unexpected and reshaped keys outside the classifier head."""

    def body(keys) -> list[str]:
        return [key for key in keys if not key.startswith(f"{HEAD}.")]

    missing = [
        key for key in body(expected) if key not in state and not key.endswith(OPTIONAL_KEYS)
    ]
    unexpected = [key for key in body(state) if key not in expected]
    reshaped = [
        f"{key} file {tuple(state[key].shape)} model {tuple(expected[key].shape)}"
        for key in body(expected)
        if key in state and state[key].shape != expected[key].shape
    ]
    found = []
    for kind, names in (("missing", missing), ("unexpected", unexpected), ("reshaped", reshaped)):
        if names:
            found.append(_listed(kind, names))
    return found


def _transformers_state(folder: Path, model: nn.Module) -> tuple[dict[str, Any], list[str]]:
    """A released checkpoint read by transformers (`from_pretrained`, offline), which also
    maps the key names older releases used: the model's tensors and what did not match."""
    from transformers import AutoModelForImageClassification

    try:
        loaded, info = AutoModelForImageClassification.from_pretrained(
            folder,
            config=model.config,  # the data's head size
            ignore_mismatched_sizes=True,  # the head; other mismatches are reported below
            local_files_only=True,
            output_loading_info=True,
            dtype=torch.float32,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(
            f"{KEY}: weights transformers can read, got {folder}, which it cannot read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None

    def body(keys) -> list[str]:
        return sorted(key for key in keys if not key.startswith(f"{HEAD}."))

    missing = [key for key in body(info["missing_keys"]) if not key.endswith(OPTIONAL_KEYS)]
    reshaped = [
        f"{key} file {tuple(file_shape)} model {tuple(model_shape)}"
        for key, file_shape, model_shape in sorted(info["mismatched_keys"])
        if not key.startswith(f"{HEAD}.")
    ]
    found = [
        _listed(kind, names)
        for kind, names in (
            ("missing", missing),
            ("unexpected", body(info["unexpected_keys"])),
            ("reshaped", reshaped),
        )
        if names
    ]
    return loaded.state_dict(), found


def load_pretrained(net: nn.Sequential, source: str) -> tuple[Path, str]:
    """Load the source's weights into all of `net` but its new head; (file, SHA-256).

    A `weights.pt` is a state_dict of the architecture as built here (`torch.save(model.
    state_dict())`); the files transformers writes (`model.safetensors`,
    `pytorch_model.bin`) are read through transformers. Either way every key outside the
    head must match."""
    from reprotrain.models.pretrained import read_state_dict

    folder = resolve(source)
    path = weights_path(folder, source)
    classifier = net[1]
    assert isinstance(classifier, ImageClassifier)  # built by build_net
    model = classifier.model
    if path.suffix != ".safetensors":  # refuse a pickled object before anything unpickles it
        state = read_state_dict(path, KEY)
    if path.name == "weights.pt":
        found = key_mismatches(state, model.state_dict())
    else:
        state, found = _transformers_state(folder, model)
    if found:
        raise UserError(
            f"{KEY}: the weights must match the architecture in {CONFIG_FILE} (only the "
            f"{HEAD} head may differ), got {path} with {'; '.join(found)}"
        )
    # Always a new head, even for as many classes as the file's: the backbone alone loads.
    body = {key: value for key, value in state.items() if not key.startswith(f"{HEAD}.")}
    model.load_state_dict(body, strict=False)
    digest = file_digest(path)
    log.info("zoo: %s (sha256 %s): %d tensors loaded, new %s", path, digest[:12], len(body), HEAD)
    return path, digest


def lineage(params: ZooParams) -> dict[str, str]:
    """What the run records about the model it started from: architecture, weights file
    (a path, or the hub id with the cached revision) and its SHA-256."""
    folder = resolve(params.source)
    architecture = io.read_json_if_present(folder / CONFIG_FILE, KEY) or {}
    names = architecture.get("architectures") or [architecture.get("model_type", "unknown")]
    info = {"architecture": str(names[0]), "source": params.source, "weights": params.weights}
    if params.weights == "pretrained":
        path = weights_path(folder, params.source)
        where = str(path)
        if params.source.startswith(HUB_PREFIX):  # the snapshot folder is the commit
            where = f"{params.source}@{folder.name}/{path.name}"
        info.update({"path": where, "sha256": file_digest(path)})
    return info
