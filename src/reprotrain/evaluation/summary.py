"""evaluate.json: every model's test scores with bootstrap intervals, the model chosen
(by dev, never by test), the fit and learning-curve verdicts, per-class scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotrain import metrics
from reprotrain.config import BootstrapParams, EvaluateParams
from reprotrain.config.paths import BASELINE_DIR, MODEL_DIR, STRONG_BASELINE_DIR, TUNED_DIR
from reprotrain.data.schema import Schema
from reprotrain.evaluation import verdicts
from reprotrain.metrics import bootstrap, paired

Prediction = tuple[np.ndarray, np.ndarray | None]  # labels or values, class probabilities


def seed_dirs(root: Path) -> list[Path]:
    return sorted(root.glob("seed-*"), key=lambda path: int(path.name.split("-")[1]))


def model_dirs() -> dict[str, Path]:
    """Every model to score: the baselines, each trained seed, tuned."""
    seeds = {path.name: path for path in seed_dirs(MODEL_DIR)}
    baselines = {"baseline": BASELINE_DIR, "strong_baseline": STRONG_BASELINE_DIR}
    return {**baselines, **seeds, "tuned": TUNED_DIR}


def read_curve(path: Path) -> list[dict[str, float]]:
    """The learning curve written by `train` (no rows when it is turned off)."""
    return pd.read_csv(path).to_dict("records")


@dataclass(frozen=True)
class Scored:
    """A split's true targets and each model's predictions of it."""

    y_true: np.ndarray
    predictions: dict[str, Prediction]
    on: str = "on dev"  # what the rows are: dev, or out-of-fold under cross-validation


def select(
    train_summary: dict, tune_summary: dict, primary: str, on_dev: dict[str, Any] | None = None
) -> tuple[str, str]:
    """The model to report, chosen on dev (never on test). The tuned model replaces the
    trained one only when it is better beyond the noise of the dev set: `on_dev` is the
    paired comparison tuned − trained (first seed) on the same dev resamples, and its
    interval must lie wholly on the better side of 0. Otherwise the trained model stays:
    the simpler of the two (its params as written, no search). Without `on_dev`, the
    higher dev score wins (ties go to the trained model)."""
    trained_dev = train_summary["model"]["dev"][primary]["mean"]
    tuned_dev = tune_summary["best_model"]["dev"][primary]
    if on_dev is not None:
        interval = f"[{on_dev['ci_low']:+.4f}, {on_dev['ci_high']:+.4f}]"
        compared = (
            f"dev {primary} tuned − trained {on_dev['difference']:+.4f} {interval} "
            f"(paired bootstrap {on_dev.get('on', 'on dev')})"
        )
        if on_dev["verdict"] == "better":
            return "tuned", f"{compared}: the tuned model is better beyond the noise"
        return "model", (
            f"{compared}: {on_dev['verdict']}; kept the trained model, the simpler (no search)"
        )
    if tuned_dev > trained_dev:
        return "tuned", f"dev {primary} {tuned_dev:.4f} (tuned) > {trained_dev:.4f} (trained)"
    return "model", f"dev {primary} {trained_dev:.4f} (trained) >= {tuned_dev:.4f} (tuned)"


def compare_on_dev(
    task: str, primary: str, dev: Scored, boot: BootstrapParams, seed: int
) -> dict[str, Any] | None:
    """Tuned − trained (first seed) on dev, paired on the same resamples, for `primary`."""
    first_seed = next(name for name in dev.predictions if name.startswith("seed-"))
    differences = paired.differences(
        task,
        dev.y_true,
        dev.predictions["tuned"],
        dev.predictions[first_seed],
        boot.n_resamples,
        boot.confidence,
        seed,
    )
    found = differences.get(primary)
    return {**found, "on": dev.on} if found is not None else None


def model_families(train_summary: dict, tune_summary: dict) -> dict[str, str | None]:
    """The train.model of the trained and of the tuned model (None: not recorded)."""
    trained = train_summary.get("model_choice", {}).get("chosen")
    tuned = tune_summary.get("best_params", {}).get("model", tune_summary.get("model"))
    return {"model": trained, "tuned": tuned}


def all_verdicts(
    train_summary: dict,
    tune_summary: dict,
    primary: str,
    params: EvaluateParams,
    more_data: dict[str, Any] | None = None,
) -> dict[str, dict[str, str]]:
    """Over- or under-fitting of the trained model (seed mean) and of the tuned one, each
    judged against the strong baseline's dev score (what a simple model reaches) with its
    family's remedies, consistent with the learning curve's verdict (`more_data`)."""
    baseline_dev = train_summary["baseline"]["dev"][primary]
    strong = train_summary.get("strong_baseline")
    reachable = strong["dev"][primary] if strong else None
    verdict = (more_data or {}).get("verdict", "unknown")
    more_data_helps = None if verdict == "unknown" else verdict == "more data likely helps"
    model = train_summary["model"]
    tuned = tune_summary["best_model"]
    scores = {
        "model": (model["train"][primary]["mean"], model["dev"][primary]["mean"]),
        "tuned": (tuned["train"][primary], tuned["dev"][primary]),
    }
    families = model_families(train_summary, tune_summary)
    return {
        name: verdicts.fit_verdict(
            train,
            dev,
            baseline_dev,
            params.overfit_gap,
            params.underfit_skill,
            model=families[name],
            reachable_dev_score=reachable,
            more_data_helps=more_data_helps,
        )
        for name, (train, dev) in scores.items()
    }


def scored(
    task: str, y_true: np.ndarray, prediction: Prediction, boot: BootstrapParams, seed: int
) -> dict[str, dict[str, float]]:
    """Every test score of one model with its bootstrap interval."""
    y_pred, proba = prediction
    points = metrics.evaluation_scores(task, y_true, y_pred, proba)
    intervals = bootstrap.intervals(
        task, y_true, y_pred, proba, boot.n_resamples, boot.confidence, seed
    )
    return {
        name: metrics.with_interval(value, intervals.get(name)) for name, value in points.items()
    }


def per_class(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list, boot: BootstrapParams, seed: int
) -> dict[str, dict[str, Any]]:
    """Precision and recall per class with intervals, and the class's test rows."""
    points = metrics.per_class_scores(y_true, y_pred, classes)
    intervals = bootstrap.per_class_intervals(
        y_true, y_pred, len(classes), boot.n_resamples, boot.confidence, seed
    )
    return {
        label: {
            "support": row["support"],
            **{
                name: metrics.with_interval(row[name], intervals[name][index])
                for name in ("precision", "recall")
            },
        }
        for index, (label, row) in enumerate(points.items())
    }


def scores_on_test(
    schema: Schema,
    y_true: np.ndarray,
    predictions: dict[str, Prediction],
    params: EvaluateParams,
    seed: int,
) -> dict[str, dict]:
    """Test scores of every model: the baselines, trained (per seed and mean ± std), tuned."""
    task, boot = schema.task, params.bootstrap
    test = {name: scored(task, y_true, pred, boot, seed) for name, pred in predictions.items()}
    seeds = {name: scores for name, scores in test.items() if name.startswith("seed-")}
    values = [{k: v["value"] for k, v in scores.items()} for scores in seeds.values()]
    return {
        "baseline": test["baseline"],
        "strong_baseline": test["strong_baseline"],
        "model": {"seeds": seeds, "mean": metrics.summarize_seeds(values)},
        "tuned": test["tuned"],
    }


def selected_scores(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Test scores (with intervals) of the selected model: tuned, or the trained seed."""
    test = summary["test"]
    if summary["selected"]["model"] == "tuned":
        return test["tuned"]
    return test["model"]["seeds"][summary["selected"]["path"].rsplit("/", 1)[-1]]


def headline(
    summary: dict[str, Any], train_summary: dict[str, Any], tune_summary: dict[str, Any]
) -> dict[str, Any]:
    """metrics/summary.json: the few numbers `dvc metrics` and `dvc exp show` compare, for
    the selected model and the two baselines: test score (primary metric, with its interval),
    dev score, train - dev gap; the selected model's best epoch; tuning's best dev score."""
    primary = summary["primary_metric"]

    def test(scores: dict[str, dict[str, float]]) -> dict[str, float]:
        score = scores[primary]
        return {primary: score["value"]} | {
            f"{primary}_{end}": score[end] for end in ("ci_low", "ci_high") if end in score
        }

    if summary["selected"]["model"] == "tuned":
        fit = tune_summary["best_model"]
        train, dev = fit["train"][primary], fit["dev"][primary]
    else:
        seed = summary["selected"]["path"].rsplit("-", 1)[-1]
        fit = train_summary["model"]["seeds"][seed]
        train, dev = fit["train"][primary], fit["dev"][primary]

    def baseline(name: str) -> dict[str, Any]:
        scores = train_summary[name]
        return {
            "test": test(summary["test"][name]),
            "dev": scores["dev"][primary],
            "train_dev_gap": scores["train"][primary] - scores["dev"][primary],
        }

    selected = {"test": test(selected_scores(summary)), "dev": dev, "train_dev_gap": train - dev}
    if fit.get("best_epoch") is not None:
        selected["best_epoch"] = fit["best_epoch"]
    return {
        "selected": selected,
        "baseline": baseline("baseline"),
        "strong_baseline": baseline("strong_baseline"),
        "tune_best_dev": tune_summary["best_dev_score"],
    }


def summarize(
    schema: Schema,
    params: EvaluateParams,
    seed: int,
    y_true: np.ndarray,
    predictions: dict[str, Prediction],
    dirs: dict[str, Path],
    train_summary: dict[str, Any],
    tune_summary: dict[str, Any],
    curve: list[dict[str, float]],
    dev: Scored | None = None,
) -> tuple[dict[str, Any], str]:
    """(evaluate.json, the name of the model it selects: 'tuned' or the first seed's).
    `dev`: the trained (first seed) and tuned models' dev predictions, for the choice."""
    task, primary = schema.task, metrics.PRIMARY[schema.task]
    on_dev = compare_on_dev(task, primary, dev, params.bootstrap, seed) if dev else None
    selected, reason = select(train_summary, tune_summary, primary, on_dev)
    more_data = verdicts.more_data_verdict(curve, params.more_data_gain)
    winner = "tuned" if selected == "tuned" else next(n for n in dirs if n.startswith("seed-"))
    summary = {
        "source": schema.source,
        "task": task,
        "n_test": len(y_true),
        "primary_metric": primary,
        "bootstrap": {**params.bootstrap.model_dump(), "seed": seed},
        "test": scores_on_test(schema, y_true, predictions, params, seed),
        "selected": {
            "model": selected,
            "reason": reason,
            "path": str(dirs[winner]),
            **({"dev_comparison": on_dev} if on_dev else {}),
        },
        "fit": all_verdicts(train_summary, tune_summary, primary, params, more_data),
        "baseline_dev": train_summary["baseline"]["dev"][primary],
        # how dev scores were made: the dev split, or folds of train+dev (small data)
        "validation": train_summary.get("validation", {"method": "holdout"}),
        "learning_curve": more_data,
        # The selected model against each alternative, paired on the same test resamples.
        "paired": paired.compare(task, y_true, predictions, winner, params.bootstrap, seed),
    }
    if task == "classification":
        y_pred = predictions[winner][0]
        summary["per_class"] = per_class(y_true, y_pred, schema.labels, params.bootstrap, seed)
    return summary, winner
