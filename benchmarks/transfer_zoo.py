"""Does a pretrained zoo model need less data? `train.model: zoo`, fine-tune vs scratch.

The digits -> noisy digits protocol of benchmarks/transfer_digits.py (its fine-tuning
case), with a tiny Hugging Face transformers architecture instead of the pipeline's CNN:
- source: a tiny ResNet (1x8x8 digits, stages of width 32 and 64) trained from scratch
  on the clean half through `train.model: zoo` with `zoo.weights: random`, then saved as
  transformers saves a released model (`save_pretrained`: config.json, model.safetensors)
  with a preprocessor_config.json, in a temporary project's pretrained/;
- target: the noisy half, split 60/20/20; each method trains on a share of the training
  split (nested stratified subsets), early-stops on the whole dev split, is scored on test:
  `fine-tune` (`zoo.weights: pretrained`: the file's weights, a new head, the backbone
  frozen for 5 epochs, then at lr x 0.1) and `scratch` (`zoo.weights: random`).

Test accuracy, mean ± std over seeds, and the fine-tune / scratch ratio, measured in this
run. Writes benchmarks/results/transfer_zoo.{csv,md}.

Run: .venv/bin/python benchmarks/transfer_zoo.py  (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from transfer_digits import PARAMS, build_cases, configure_threads, protocol_parser, summarize

from reprotrain import config
from reprotrain.config import TrainParams
from reprotrain.data import io
from reprotrain.data.schema import Schema
from reprotrain.training import learning_curve
from reprotrain.training.fitting import fit_and_score

FRACTIONS = (0.05, 0.1, 0.25, 1.0)  # the protocol of benchmarks/transfer_digits.py
SOURCE = "pretrained/digits-resnet"
IMAGE_SHAPE = [1, 8, 8]
CLASSES = list(range(10))
RECIPE: dict[str, Any] = {
    "model": "zoo",
    "seeds": [0],
    "device": "cpu",
    "progress": "off",
    "checkpoint": False,
    "augment": {"enabled": False},
    "optim": {"optimizer": "adamw", "lr": 0.001, "batch_size": 32, "epochs": 40},
    "early_stopping": {"monitor": "dev_loss", "patience": 6},
}
METHODS = {
    "scratch": {"source": SOURCE, "weights": "random", "freeze_epochs": 0},
    "fine-tune": {
        "source": SOURCE,
        "weights": "pretrained",
        "freeze_epochs": 5,
        "backbone_lr_factor": 0.1,
    },
}
# digits' pixels are 0-16: scaled to [0, 1], then centred roughly as ImageNet models are
PREPROCESSOR = {
    "do_rescale": True,
    "rescale_factor": 1 / 16,
    "do_normalize": True,
    "image_mean": [0.3],
    "image_std": [0.4],
    "size": {"height": 8, "width": 8},
}


def train_params(zoo: dict[str, Any]) -> TrainParams:
    raw = config.merge(config.read_params(PARAMS)["train"], {**RECIPE, "zoo": zoo})
    return config.parse_section("train", raw, source="benchmark")


def schema() -> Schema:
    return Schema(
        source="sklearn:digits",
        target="label",
        task="classification",
        features=(),
        classes=CLASSES,
        image_shape=IMAGE_SHAPE,
        n_rows=0,
    )


def write_architecture(folder: Path) -> None:
    from transformers import ResNetConfig

    folder.mkdir(parents=True, exist_ok=True)
    architecture = ResNetConfig(
        num_channels=1, embedding_size=16, hidden_sizes=[32, 64], depths=[1, 1], num_labels=10
    )
    architecture.architectures = ["ResNetForImageClassification"]
    architecture.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))


def pretrain(source: tuple[Any, Any]) -> float:
    """The source ResNet from scratch on clean digits, saved as a released model would be."""
    write_architecture(Path(SOURCE))
    train, dev = source
    fitted = fit_and_score(train_params(METHODS["scratch"]), schema(), 0, train, dev)
    fitted.model.net[1].model.save_pretrained(SOURCE)
    return fitted.dev_scores["accuracy"]


def run(target: tuple[Any, Any, Any], seeds: list[int]) -> list[dict[str, Any]]:
    train, dev, test = target
    rows = []
    for seed in seeds:
        order = learning_curve.subset_order(train[1], seed, stratify=True)
        for fraction in FRACTIONS:
            size = learning_curve.subset_size(len(order), fraction, len(CLASSES))
            chosen = np.sort(order[:size])
            subset = (train[0][chosen], train[1][chosen])
            for method, zoo in METHODS.items():
                fitted = fit_and_score(train_params(zoo), schema(), seed, subset, dev)
                predicted = fitted.model.predict(test[0])
                rows.append(
                    {
                        "case": "noisy digits, same 10 labels (tiny ResNet)",
                        "method": method,
                        "fraction": fraction,
                        "n_train": size,
                        "seed": seed,
                        "test_accuracy": float((predicted == test[1]).mean()),
                        "best_epoch": fitted.best_epoch,
                    }
                )
    return rows


def markdown(summary: pd.DataFrame) -> str:
    """A row per fraction: both methods' test accuracy and the ratio of their means."""
    lines = [
        "| share of target train | n | scratch | fine-tune | fine-tune / scratch |",
        "|---|---|---|---|---|",
    ]
    for fraction, group in summary.groupby("fraction"):
        by_method = group.set_index("method")
        scratch, tuned = by_method.loc["scratch"], by_method.loc["fine-tune"]
        lines.append(
            f"| {fraction:.0%} | {int(scratch['n_train'])} "
            f"| {scratch['mean']:.3f} ± {scratch['std']:.3f} "
            f"| {tuned['mean']:.3f} ± {tuned['std']:.3f} "
            f"| {tuned['mean'] / scratch['mean']:.2f} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    return protocol_parser(__doc__, [0, 1, 2, 3, 4]).parse_args()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args()
    configure_threads(args.threads)
    started = time.monotonic()
    case = build_cases(args.noise)[0]  # the fine-tuning case: same 10 labels
    # train.zoo.source must be relative and under pretrained/, as in the pipeline.
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        source_dev = pretrain(case.source)
        print(f"source ResNet dev accuracy (clean digits) {source_dev:.3f}", flush=True)
        rows = run(case.target, args.seeds)
    table = pd.DataFrame(rows)
    text = markdown(summarize(table))
    elapsed = time.monotonic() - started
    print(text)
    print(f"({elapsed:.0f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    io.write_csv(args.out / "transfer_zoo.csv", table)
    seeds = ", ".join(str(seed) for seed in args.seeds)
    (args.out / "transfer_zoo.md").write_text(
        f"Test accuracy on noisy digits (noise std {args.noise:g}), mean ± std over seeds "
        f"{seeds}; `benchmarks/transfer_zoo.py`, {elapsed:.0f} s on {args.threads} thread(s).\n\n"
        + text
        + "\n"
    )


if __name__ == "__main__":
    main()
