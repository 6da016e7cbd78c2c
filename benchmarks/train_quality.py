"""Test accuracy on digits, mean ± std over 3 seeds, for the default config and variants.

Floors: the default config >= 0.985; the CNN with augmentation >= 0.99.
Uses the pipeline's own split (params.yaml `base.seed`, `split.*`) and library code; the
test split is read here only to report, as `evaluate` does.

Run: .venv/bin/python benchmarks/train_quality.py
"""

from __future__ import annotations

import logging

import numpy as np

from reprotrain import config, metrics
from reprotrain.data import datasets, splitting
from reprotrain.data.features import fit_preprocessor
from reprotrain.training.fitting import configure_torch, fit_and_score
from reprotrain.tuning import apply

VARIANTS = {
    "default (params.yaml)": {},
    "cnn + augmentation": {"model": "cnn", "augment.enabled": True},
    "cnn, no augmentation": {"model": "cnn", "augment.enabled": False},
    "mlp + augmentation": {"model": "mlp", "augment.enabled": True},
    "mlp, no augmentation": {"model": "mlp", "augment.enabled": False},
}
FLOORS = {"default (params.yaml)": 0.985, "cnn + augmentation": 0.99}


def digits_splits(base, split):
    frame, target, image_shape = datasets.load_source("sklearn:digits", None)
    schema = datasets.build_schema(frame, target, "classification", "sklearn:digits", image_shape)
    fractions = {"train": split.train, "dev": split.dev, "test": split.test}
    codes = splitting.split_codes(len(frame), frame[target].to_numpy(), fractions, base.seed)
    codes, _ = splitting.resolve_duplicates(
        codes, splitting.row_hashes(frame.drop(columns=[target]))
    )
    parts = [frame[codes == code] for code in range(3)]
    preprocessor = fit_preprocessor(parts[0], schema)
    arrays = [(preprocessor.transform(p), datasets.encode_target(p, schema)) for p in parts]
    return schema, *arrays


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    base, split, train_params = config.load("base", "split", "train")
    configure_torch(base)
    schema, train, dev, test = digits_splits(base, split)
    params = apply(train_params, {"progress": "off", "checkpoint": False})
    print(
        f"digits: train {len(train[1])}, dev {len(dev[1])}, test {len(test[1])}; "
        f"seeds {list(params.seeds)}"
    )
    for name, overrides in VARIANTS.items():
        variant = apply(params, overrides)
        accuracies = [
            metrics.score_model(
                fit_and_score(variant, schema, seed, train, dev).model, "classification", test
            )["accuracy"]
            for seed in variant.seeds
        ]
        mean, std = float(np.mean(accuracies)), float(np.std(accuracies, ddof=1))
        floor = FLOORS.get(name)
        verdict = "" if floor is None else f" (floor {floor}) {'PASS' if mean >= floor else 'FAIL'}"
        print(f"{name:24s} test accuracy {mean:.4f} ± {std:.4f} [{variant.model}]{verdict}")


if __name__ == "__main__":
    main()
