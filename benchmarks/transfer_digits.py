"""Does a pretrained CNN need less data? Fine-tuning and transfer vs scratch on digits.

Source: the default CNN (`train.cnn`: 3x3 convs with 32 and 64 channels, a 128-unit hidden
layer; no augmentation) pretrained on one half of
scikit-learn's digits (clean, all 10 classes), written as a model directory and loaded
back through `train.init_from`, as the train stage does.
Target: the other half with Gaussian pixel noise (a new domain), split 60/20/20 into
train/dev/test; each method trains on 5%, 10%, 25% and 100% of that training split
(nested, stratified subsets), early-stops on the whole dev split, and is scored on test.

Cases (test accuracy, mean ± std over 3 seeds):
- fine-tuning: the same 10 labels; `init_from.mode: finetune` vs the same CNN from scratch;
- transfer: label = even vs odd; `mode: transfer` (new output layer, backbone frozen for
  the first epochs, then trained at a lower lr) vs scratch;
- unrelated classes: pretrained on digits 0-4 of the source half, target digits 5-9 of
  the noisy half (5 new classes); transfer vs scratch. Here pretraining may not help.

Writes benchmarks/results/transfer_digits.{csv,md,png} and logs them to MLflow (a run
named `transfer_digits`; `--no-mlflow` to skip).

Run: .venv/bin/python benchmarks/transfer_digits.py  (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_args import positive_int

from reprotrain import config
from reprotrain.config import TrainParams
from reprotrain.data import io
from reprotrain.data.schema import Feature, Schema
from reprotrain.training import learning_curve
from reprotrain.training.fitting import configure_torch, fit_and_score

Arrays = tuple[np.ndarray, np.ndarray]
RESULTS = Path(__file__).resolve().parent / "results"
PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"  # every key not in RECIPE
PRETRAINED = Path(config.PRETRAINED_DIR)
FRACTIONS = (0.05, 0.1, 0.25, 1.0)
IMAGE_SHAPE = [1, 8, 8]

# One recipe for every method; pretrained runs differ only in where they start (and the
# transfer schedule): lr, batch size, epochs and early stopping are the same.
RECIPE: dict[str, Any] = {
    "model": "cnn",
    "seeds": [0],
    "device": "cpu",
    "progress": "off",
    "checkpoint": False,
    "augment": {"enabled": False},
    "optim": {"optimizer": "adam", "lr": 0.001, "batch_size": 32, "epochs": 60},
    "early_stopping": {"monitor": "dev_loss", "patience": 8},
}
FINETUNE = {"finetune": {"mode": "finetune"}}
TRANSFER = {
    "transfer": {"mode": "transfer", "freeze_epochs": 10, "backbone_lr_factor": 0.1},
    "transfer, no freeze": {"mode": "transfer"},
}
NOISE = 6.0  # std of the Gaussian pixel noise of the target half (pixels are 0-16)


@dataclass(frozen=True)
class Case:
    name: str
    source: tuple[Arrays, Arrays]  # pretraining train and dev
    source_classes: list[int]
    target: tuple[Arrays, Arrays, Arrays]  # train, dev, test
    target_classes: list[int]
    methods: dict[str, dict[str, Any]]  # name -> train.init_from (without its path)


def train_params(recipe: dict[str, Any], init_from: dict[str, Any] | None = None) -> TrainParams:
    raw = config.merge(config.read_params(PARAMS)["train"], recipe)
    if init_from:  # over params.yaml's init_from: the keys a case does not set keep theirs
        raw["init_from"] = {**raw["init_from"], **init_from}
    return config.parse_section("train", raw, source="benchmark")


def schema(classes: list[int]) -> Schema:
    """The schema `prepare` writes for digits, restricted to some of its classes."""
    n_pixels = IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
    features = tuple(Feature(f"pixel_{i}", "float64", "numeric") for i in range(n_pixels))
    return Schema(
        source="sklearn:digits",
        target="label",
        task="classification",
        features=features,
        classes=classes,
        image_shape=IMAGE_SHAPE,
        n_rows=0,
    )


def split(features: np.ndarray, labels: np.ndarray, shares: tuple[float, ...], seed: int):
    """Stratified parts of the rows with the given shares (they sum to 1)."""
    from sklearn.model_selection import train_test_split

    parts, rest = [], (features, labels)
    remaining = 1.0
    for share in shares[:-1]:
        x_part, x_rest, y_part, y_rest = train_test_split(
            *rest, train_size=share / remaining, stratify=rest[1], random_state=seed
        )
        parts.append((x_part, y_part))
        rest, remaining = (x_rest, y_rest), remaining - share
    return [*parts, rest]


def relabel(data: Arrays, keep: np.ndarray | None, mapping) -> Arrays:
    features, labels = data
    chosen = np.ones(len(labels), bool) if keep is None else keep(labels)
    return features[chosen], mapping(labels[chosen])


def build_cases(noise: float, seed: int = 0) -> list[Case]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    features, labels = digits.data.astype(np.float32), digits.target
    source, target = split(features, labels, (0.5, 0.5), seed)
    rng = np.random.default_rng(seed)
    noisy = (target[0] + rng.normal(0.0, noise, target[0].shape)).astype(np.float32)
    source_parts = split(*source, (0.8, 0.2), seed)
    target_parts = split(noisy, target[1], (0.6, 0.2, 0.2), seed)
    same = lambda y: y  # noqa: E731
    low = lambda y: y < 5  # noqa: E731
    high = lambda y: y >= 5  # noqa: E731
    return [
        Case(
            "fine-tuning (noisy digits, same 10 labels)",
            tuple(source_parts),
            list(range(10)),
            tuple(target_parts),
            list(range(10)),
            FINETUNE,
        ),
        Case(
            "transfer (noisy digits, even vs odd)",
            tuple(source_parts),
            list(range(10)),
            tuple(relabel(part, None, lambda y: y % 2) for part in target_parts),
            [0, 1],
            TRANSFER,
        ),
        Case(
            "unrelated classes (digits 0-4 -> noisy 5-9)",
            tuple(relabel(part, low, same) for part in source_parts),
            list(range(5)),
            tuple(relabel(part, high, lambda y: y - 5) for part in target_parts),
            list(range(5)),
            TRANSFER,
        ),
    ]


def pretrain(case: Case, recipe: dict[str, Any], directory: Path) -> tuple[Path, float]:
    """Train the source model once and save it as a model directory (weights + config)."""
    train, dev = case.source
    fitted = fit_and_score(train_params(recipe), schema(case.source_classes), 0, train, dev)
    fitted.model.save(directory)
    schema(case.source_classes).write(directory / "schema.json")
    return directory, fitted.dev_scores["accuracy"]


def accuracy(model: Any, data: Arrays) -> float:
    return float((model.predict(data[0]) == data[1]).mean())


def run_case(
    case: Case, checkpoint: Path, recipe: dict[str, Any], seeds: list[int]
) -> list[dict[str, Any]]:
    """One row per method, fraction and seed: test accuracy and training rows used."""
    train, dev, test = case.target
    methods = {"scratch": train_params(recipe)} | {
        name: train_params(recipe, {**init_from, "path": str(checkpoint)})
        for name, init_from in case.methods.items()
    }
    rows = []
    for seed in seeds:
        order = learning_curve.subset_order(train[1], seed, stratify=True)
        for fraction in FRACTIONS:
            size = learning_curve.subset_size(len(order), fraction, len(case.target_classes))
            chosen = np.sort(order[:size])
            subset = (train[0][chosen], train[1][chosen])
            for method, params in methods.items():
                fitted = fit_and_score(params, schema(case.target_classes), seed, subset, dev)
                rows.append(
                    {
                        "case": case.name,
                        "method": method,
                        "fraction": fraction,
                        "n_train": size,
                        "seed": seed,
                        "test_accuracy": accuracy(fitted.model, test),
                        "best_epoch": fitted.best_epoch,
                    }
                )
    return rows


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of test accuracy per case, method and fraction."""
    grouped = rows.groupby(["case", "method", "fraction"], sort=False)
    summary = grouped.agg(
        n_train=("n_train", "first"),
        mean=("test_accuracy", "mean"),
        std=("test_accuracy", lambda values: float(np.std(values, ddof=0))),
    )
    return summary.reset_index()


def markdown(summary: pd.DataFrame) -> str:
    """One table: a row per case and method, a column per fraction (mean ± std)."""
    fractions = sorted(summary["fraction"].unique())
    header = "| case | method | " + " | ".join(f"{f:.0%}" for f in fractions) + " |"
    lines = [header, "|---|---|" + "---|" * len(fractions)]
    for (case, method), group in summary.groupby(["case", "method"], sort=False):
        cells = [
            f"{row['mean']:.3f} ± {row['std']:.3f} (n={row['n_train']})"
            for _, row in group.sort_values("fraction").iterrows()
        ]
        lines.append(f"| {case} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(summary: pd.DataFrame) -> Any:
    """Test accuracy against the fraction of training data: a panel per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(summary["case"]))
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4), squeeze=False)
    for axis, case in zip(axes[0], cases, strict=True):
        for method, group in summary[summary["case"] == case].groupby("method", sort=False):
            group = group.sort_values("fraction")
            axis.errorbar(
                group["fraction"],
                group["mean"],
                yerr=group["std"],
                marker="o",
                capsize=3,
                label=method,
            )
        axis.set_xscale("log")
        axis.set_xticks(FRACTIONS, [f"{f:.0%}" for f in FRACTIONS])
        axis.set_title(case, fontsize=10)
        axis.set_xlabel("share of the target training split")
        axis.set_ylabel("test accuracy (mean ± std, 3 seeds)")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    return fig


def log_to_mlflow(args: argparse.Namespace, summary: pd.DataFrame, paths: list[Path]) -> str:
    from reprotrain import tracking

    methods = {_slug(name): init_from for name, init_from in {**FINETUNE, **TRANSFER}.items()}
    params = {"noise": args.noise, "seeds": args.seeds, "recipe": RECIPE, "methods": methods}
    with tracking.stage_run("transfer_digits", params) as run:
        run_id = run.info.run_id
        values = {
            f"{_slug(row.case)}.{_slug(row.method)}.f{row.fraction:g}.test_accuracy_mean": row.mean
            for row in summary.itertuples()
        }
        tracking.log_metrics(run_id, values)
        for path in paths:
            tracking.log_artifact(run_id, path)
    return run_id


def _slug(text: str) -> str:
    """A metric-name-safe short form: 'transfer, no freeze' -> 'transfer_no_freeze'."""
    words = text.split(" (")[0].replace(",", " ").split()
    return "_".join(words)


def protocol_parser(doc: str, seeds: list[int]) -> argparse.ArgumentParser:
    """The options of a digits -> noisy digits benchmark (this one, transfer_zoo.py)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--noise", type=float, default=NOISE, help="pixel noise std (pixels 0-16)")
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="torch CPU threads (1 is fastest here)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def configure_threads(threads: int) -> None:
    """params.yaml's base settings for torch, with the benchmark's thread count."""
    (base,) = config.load("base", path=PARAMS)
    configure_torch(base.model_copy(update={"threads": threads}))


def parse_args() -> argparse.Namespace:
    parser = protocol_parser(__doc__, [0, 1, 2])
    parser.add_argument("--no-mlflow", action="store_true")
    return parser.parse_args()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args()
    configure_threads(args.threads)
    started = time.monotonic()
    rows = []
    # train.init_from.path must be relative and under pretrained/, as in the pipeline.
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        for number, case in enumerate(build_cases(args.noise)):
            checkpoint, source_dev = pretrain(case, RECIPE, PRETRAINED / f"source-{number}")
            print(f"{case.name}: source model dev accuracy {source_dev:.3f}", flush=True)
            rows += run_case(case, checkpoint, RECIPE, args.seeds)
    table = pd.DataFrame(rows)
    summary = summarize(table)
    text = markdown(summary)
    print(text)
    print(f"({time.monotonic() - started:.0f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [args.out / "transfer_digits.csv", args.out / "transfer_digits.md"]
    io.write_csv(paths[0], table)
    paths[1].write_text(text + "\n")
    fig = figure(summary)
    paths.append(args.out / "transfer_digits.png")
    fig.savefig(paths[2], dpi=100)
    if not args.no_mlflow:
        print(f"MLflow run {log_to_mlflow(args, summary, paths)}")


if __name__ == "__main__":
    main()
