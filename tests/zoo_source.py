"""A tiny transformers image model under a project's pretrained/, pretrained for real on
generated images, and image folders of a second task to fine-tune it on (tests/models/
test_zoo.py, tests/e2e/test_zoo_pipeline.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import repo_params

from reprotrain.config import merge

SIZE = 32  # the tests' image side
MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.25, 0.25]


def generated_images(n_rows: int, task: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, SIZE, SIZE) uint8 noise with a bright 8x8 square; the label is its quadrant
    (task `quadrant`, 4 classes) or its colour channel (task `colour`, 3 classes)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(n_rows, 3, SIZE, SIZE), dtype=np.uint8)
    quadrant = rng.integers(0, 4, n_rows)
    colour = rng.integers(0, 3, n_rows)
    for row in range(n_rows):
        top = 16 * (quadrant[row] // 2) + rng.integers(0, 8)
        left = 16 * (quadrant[row] % 2) + rng.integers(0, 8)
        images[row, colour[row], top : top + 8, left : left + 8] = 230
    return images, (quadrant if task == "quadrant" else colour)


def write_architecture(folder: Path) -> None:
    """config.json of a tiny ResNet and the preprocessor_config.json of 32x32 inputs."""
    from transformers import ResNetConfig

    folder.mkdir(parents=True, exist_ok=True)
    config = ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=4
    )
    config.architectures = ["ResNetForImageClassification"]
    config.save_pretrained(folder)
    preprocessor = {
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": MEAN,
        "image_std": STD,
        "size": {"height": SIZE, "width": SIZE},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))


SOURCE = "pretrained/tiny-resnet"


def zoo_params(source: str = SOURCE, **overrides: Any) -> Any:
    """train params of a small zoo fit on the CPU; `overrides` as train.* sections."""
    sections = {
        "zoo": {"source": source, "weights": "pretrained"},
        "optim": {"epochs": 3, "lr": 0.01, "batch_size": 32},
        "augment": {"enabled": False},
    }
    return repo_params.train(
        **merge(sections, overrides), model="zoo", device="cpu", progress="off"
    )


def as_rows(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32)


def pretrain(source: str = SOURCE, epochs: int = 3) -> None:
    """Train the tiny ResNet from scratch on the quadrant task (through the zoo model
    itself, weights: random) and save it as transformers does: model.safetensors. Run in
    the project root (`source` is relative to it)."""
    from reprotrain.models.model import TorchModel

    folder = Path(source)
    write_architecture(folder)
    images, labels = generated_images(240, "quadrant", seed=0)
    rows = as_rows(images)
    params = zoo_params(source, zoo={"weights": "random"}, optim={"epochs": epochs})
    model = TorchModel.from_params(
        params, "classification", 4, 0, [3, SIZE, SIZE], ["0", "1", "2", "3"]
    )
    model.fit((rows[:200], labels[:200]), (rows[200:], labels[200:]))
    model.net[1].model.save_pretrained(folder)


def write_image_folder(root: Path, n_rows: int, seed: int) -> None:
    """PNG files of the colour task, one subfolder per class (red, green, blue)."""
    from PIL import Image

    images, labels = generated_images(n_rows, "colour", seed)
    names = ["red", "green", "blue"]
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{index:04d}.png")
