"""Learning curve: dev score against the share of the training data used.

Computed in `train` (it reads train and dev only, never test): the configured model is
refit with one seed on growing, nested subsets of the training split. A curve still
rising at 100% says more data would likely help; a flat one says it would not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from reprotrain.data.schema import Schema

Arrays = tuple[np.ndarray, np.ndarray]
COLUMNS = ["fraction", "n_train", "train_score", "dev_score"]


def subset_order(targets: np.ndarray, seed: int, stratify: bool) -> np.ndarray:
    """A seeded order of the training rows whose every prefix keeps the class mix.

    Stratified: rows are shuffled within each class and interleaved by their rank
    within the class, so a prefix of any length holds each class in proportion (and
    every class early on). Unstratified: a plain seeded permutation.
    """
    rng = np.random.default_rng(seed)
    if not stratify:
        return rng.permutation(len(targets))
    position = np.empty(len(targets), dtype=np.float64)
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        shuffled = rng.permutation(members)
        # Rank k of n members sits at (k + 0.5) / n: classes interleave proportionally.
        position[shuffled] = (np.arange(len(members)) + 0.5) / len(members)
    return np.lexsort((rng.random(len(targets)), position))


def subset_size(n_rows: int, fraction: float, minimum: int) -> int:
    return int(min(n_rows, max(minimum, round(fraction * n_rows))))


def learning_curve(
    fit: Callable[[Arrays], Any],
    train: Arrays,
    fractions: list[float],
    primary: str,
    seed: int,
    stratify: bool,
    full: Any = None,
) -> list[dict[str, float]]:
    """One row per fraction: {fraction, n_train, train_score, dev_score}.

    `fit(subset)` trains on a subset of the training arrays and returns an object with
    `train_scores` and `dev_scores` dicts (fitting.Fitted). `full`, a fit on all the
    training data already made, is reused for fraction 1.0 instead of refitting.
    """
    features, targets = train
    order = subset_order(targets, seed, stratify)
    n_classes = len(np.unique(targets)) if stratify else 1
    rows = []
    for fraction in fractions:
        size = subset_size(len(targets), fraction, minimum=max(2, n_classes))
        if size == len(targets) and full is not None:
            fitted = full
        else:
            chosen = np.sort(order[:size])
            fitted = fit((features[chosen], targets[chosen]))
        rows.append(
            {
                "fraction": float(fraction),
                "n_train": size,
                "train_score": float(fitted.train_scores[primary]),
                "dev_score": float(fitted.dev_scores[primary]),
            }
        )
    return rows


def for_train(
    params: Any,
    fractions: list[float],
    schema: Schema,
    dev: Arrays,
    train: Arrays,
    full: Any,
    progress: str = "off",
    seed: int | None = None,
) -> list[dict[str, float]]:
    """The curve for the `train` stage: the configured model, the first seed's fit `full`
    reused (None: every fraction fitted here, with `seed`)."""
    from reprotrain import metrics
    from reprotrain.training.fitting import fit_and_score

    task, n_rows = schema.task, len(train[1])
    seed = full.seed if full is not None else seed
    assert seed is not None, "a seed, or the fit to reuse"

    def fit(subset: Arrays) -> Any:
        share = f"learning curve {len(subset[1]) / n_rows:.0%} ({len(subset[1])} of {n_rows} rows)"
        return fit_and_score(params, schema, seed, subset, dev, progress=progress, label=share)

    return learning_curve(
        fit,
        train,
        fractions,
        metrics.PRIMARY[task],
        seed,
        stratify=task == "classification",
        full=full,
    )
