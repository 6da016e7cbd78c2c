"""How far can a choice made on train+dev alone get on small tables? Selection rules side by
side on the pipeline's own splits.

    python benchmarks/selection_rules.py [--datasets breast_cancer wine diabetes]
        [--seeds 42 43 44 45 46] [--folds 5]

For each dataset and split seed, the rows are split as `split` splits them
(reprotrain.data.splitting.split_codes, 60/20/20, stratified for classification) and the
train+dev rows are cut into folds as `split.cv_folds` cuts them (reprotrain.data.folds).
The four candidates of `train.model: auto` (scaled linear model, RBF SVM, random forest,
gradient boosting; scikit-learn defaults as the pipeline's params.yaml sets them) are scored
out of fold, refit on train+dev and scored on test. Each rule picks one model per seed from
the train+dev scores only; the table shows each rule's mean test score over the seeds beside
every fixed model's (the references of benchmarks/defaults_floors.py) and two ensembles of
the four (soft voting, stacking):

- paired: the pipeline's rule: the best flexible model replaces the linear one only when the
  paired bootstrap interval of its out-of-fold advantage lies wholly above 0;
- one_se: the simplest model (linear, SVM, forest, boosting) within one standard error of the
  best fold mean;
- argmax: the best fold mean, whatever the noise.

No floor: it measures what the selection step can reach. Results: printed, and written to
benchmarks/results/selection_rules.md.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from bench_args import positive_int
from sklearn import datasets
from sklearn.base import clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from threadpoolctl import threadpool_limits

from reprotrain import metrics
from reprotrain.data import folds, splitting
from reprotrain.metrics import paired

RESULTS = Path(__file__).parent / "results" / "selection_rules.md"
TASKS = {"breast_cancer": "classification", "wine": "classification", "diabetes": "regression"}
SIMPLEST_FIRST = ["linear", "svm", "random_forest", "hist_gradient_boosting"]
FRACTIONS = {"train": 0.6, "dev": 0.2, "test": 0.2}


def candidates(task: str) -> dict[str, Any]:
    """auto's four candidates, simplest first (params.yaml's defaults)."""
    if task == "classification":
        return {
            "linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            "svm": make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)),
            "random_forest": RandomForestClassifier(200, random_state=0, n_jobs=1),
            "hist_gradient_boosting": HistGradientBoostingClassifier(
                min_samples_leaf=20, early_stopping=True, random_state=0
            ),
        }
    return {
        "linear": make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        "svm": make_pipeline(StandardScaler(), SVR()),
        "random_forest": RandomForestRegressor(200, random_state=0, n_jobs=1),
        "hist_gradient_boosting": HistGradientBoostingRegressor(
            min_samples_leaf=20, early_stopping=True, random_state=0
        ),
    }


def ensembles(task: str, models: dict[str, Any]) -> dict[str, Any]:
    members = list(models.items())
    if task == "classification":
        return {
            "soft_vote": VotingClassifier(members, voting="soft"),
            "stacking": StackingClassifier(members, LogisticRegression(max_iter=1000), cv=5),
        }
    return {
        "soft_vote": VotingRegressor(members),
        "stacking": StackingRegressor(members, RidgeCV()),
    }


def prediction(model: Any, task: str, features: np.ndarray) -> tuple[np.ndarray, Any]:
    proba = model.predict_proba(features) if task == "classification" else None
    return model.predict(features), proba


def out_of_fold(model: Any, task: str, features, targets, codes) -> tuple[list[float], tuple]:
    """Fold scores and out-of-fold predictions (labels, probabilities)."""
    primary = metrics.PRIMARY[task]
    labels = np.empty(len(targets), dtype=targets.dtype)
    proba = None
    scores = []
    for number in np.unique(codes):
        held = codes == number
        fitted = clone(model).fit(features[~held], targets[~held])
        labels[held], fold_proba = prediction(fitted, task, features[held])
        if fold_proba is not None:
            proba = np.zeros((len(targets), fold_proba.shape[1])) if proba is None else proba
            proba[held] = fold_proba
        scores.append(metrics.scores(task, targets[held], labels[held], fold_proba)[primary])
    return scores, (labels, proba)


def choose(task: str, targets, fold_scores: dict, oof: dict, seed: int) -> dict[str, str]:
    """Each rule's pick from train+dev scores only."""
    means = {name: float(np.mean(scores)) for name, scores in fold_scores.items()}
    best = max(SIMPLEST_FIRST, key=means.__getitem__)
    standard_error = np.std(fold_scores[best], ddof=1) / np.sqrt(len(fold_scores[best]))
    one_se = next(name for name in SIMPLEST_FIRST if means[name] >= means[best] - standard_error)
    primary = metrics.PRIMARY[task]
    pooled = {name: metrics.scores(task, targets, *oof[name])[primary] for name in oof}
    flexible = max(SIMPLEST_FIRST[1:], key=pooled.__getitem__)
    difference = paired.differences(task, targets, oof[flexible], oof["linear"], 1000, 0.95, seed)[
        primary
    ]
    pick = flexible if difference["verdict"] == "better" else "linear"
    return {"paired": pick, "one_se": one_se, "argmax": best}


def run(dataset: str, seed: int, n_folds: int) -> dict[str, Any]:
    task = TASKS[dataset]
    features, targets = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    labels = targets if task == "classification" else None
    codes = splitting.split_codes(len(targets), labels, FRACTIONS, seed)
    development, test = codes < 2, codes == 2
    x_dev, y_dev = features[development], targets[development]
    fold_codes = folds.fold_codes(
        len(y_dev), y_dev if task == "classification" else None, n_folds, 1, seed
    )[:, 0]
    models = candidates(task)
    primary = metrics.PRIMARY[task]
    fold_scores, oof, test_scores = {}, {}, {}
    for name, model in {**models, **ensembles(task, models)}.items():
        if name in models:
            fold_scores[name], oof[name] = out_of_fold(model, task, x_dev, y_dev, fold_codes)
        fitted = clone(model).fit(x_dev, y_dev)
        predicted = prediction(fitted, task, features[test])
        test_scores[name] = metrics.scores(task, targets[test], *predicted)[primary]
    picks = choose(task, y_dev, fold_scores, oof, seed)
    return {
        "test": test_scores,
        "picks": picks,
        "rules": {rule: test_scores[name] for rule, name in picks.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44, 45, 46])
    parser.add_argument("--folds", type=positive_int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # SVC(probability=True)
    columns = [*SIMPLEST_FIRST, "soft_vote", "stacking", "paired", "one_se", "argmax"]
    lines = [
        "# Selection rules on small tables (benchmarks/selection_rules.py)",
        "",
        f"Mean test score over split seeds {args.seeds}; {args.folds} folds over train+dev; "
        "picks per seed in the last column.",
        "",
        f"| dataset | {' | '.join(columns)} | picks (paired / one_se / argmax) |",
        f"|---|{'---|' * len(columns)}---|",
    ]
    with threadpool_limits(1):
        for dataset in args.datasets:
            runs = [run(dataset, seed, args.folds) for seed in args.seeds]
            means = {
                column: np.mean([r["test"].get(column, r["rules"].get(column)) for r in runs])
                for column in columns
            }
            picks = " ; ".join(
                ", ".join(r["picks"][rule] for r in runs) for rule in ("paired", "one_se", "argmax")
            )
            row = " | ".join(f"{means[column]:.4f}" for column in columns)
            lines.append(f"| {dataset} | {row} | {picks} |")
            print(lines[-1], flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
