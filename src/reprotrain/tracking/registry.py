"""The evaluated winner in the MLflow Model Registry, and when the `champion` alias moves.

An evaluate run registers its winner as a new version (with signature and input example)
unless a version of the same registered model holds the same files already (the version
tag `model_digest`): then that version is reused, so rerunning the pipeline adds nothing
to the registry. The alias `champion` moves to the winner only when it beats the current
champion beyond the noise: both predict the same test rows, and the paired bootstrap
interval of the difference (the same resamples for both, as evaluate's paired
comparisons) must lie wholly above 0. Otherwise the run and the version carry the reason.
The champion is the store's, not a pipeline input, so this comparison lives in MLflow (run
tags) and never in the DVC outputs, which stay reproducible from a fresh clone. MLflow
calls go through `reprotrain.tracking`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotrain import tracking
from reprotrain.config.paths import SPLIT_FILES
from reprotrain.data import datasets, io
from reprotrain.data.schema import Schema
from reprotrain.evaluation import verdicts
from reprotrain.evaluation.summary import selected_scores
from reprotrain.metrics import paired
from reprotrain.models.model import load_model, predict_rows

log = logging.getLogger(__name__)


def frame_predictions(schema: Schema, predictions: pd.DataFrame) -> np.ndarray:
    """A pyfunc prediction frame (column `prediction`) as encoded targets: class indices
    (-1 for a label this schema does not know) or float values."""
    predicted = predictions["prediction"].tolist()
    if schema.task == "classification":
        index = {label: position for position, label in enumerate(schema.labels)}
        return np.array([index.get(label, -1) for label in predicted])
    return np.asarray(predicted, dtype=np.float64)


def champion_on_test(
    name: str, schema: Schema, test_frame: pd.DataFrame
) -> tuple[str | None, np.ndarray | None, str]:
    """(version, its predictions of the test rows, problem) of the current champion."""
    version = tracking.champion_version(name)
    if version is None:
        return None, None, ""
    try:
        rows = datasets.feature_frame(test_frame, schema)
        return version, frame_predictions(schema, tracking.predict_registered(name, rows)), ""
    except Exception as exc:  # noqa: BLE001 - any failure means it cannot be compared
        return version, None, f"{type(exc).__name__}: {exc}"[:300]


def against_champion(
    schema: Schema,
    summary: dict[str, Any],
    test_frame: pd.DataFrame,
    winner_dir: Path,
    champion_predictions: np.ndarray,
) -> dict[str, Any] | None:
    """The winner minus the champion on the primary metric, paired on evaluate's test
    resamples (its bootstrap settings and seed)."""
    y_true = datasets.encode_target(test_frame, schema)
    winner, _ = predict_rows(load_model(winner_dir), test_frame)
    boot = summary["bootstrap"]
    scores = paired.differences(
        schema.task,
        y_true,
        (winner, None),
        (champion_predictions, None),
        boot["n_resamples"],
        boot["confidence"],
        boot["seed"],
    )
    return scores.get(summary["primary_metric"])


def register_winner(
    run_id: str,
    params: Any,
    schema: Schema,
    summary: dict[str, Any],
    test_frame: pd.DataFrame,
    winner_dir: Path,
) -> dict[str, str]:
    """Register the winner (or reuse its version); move `champion` if it beats the
    current one beyond the noise."""
    name = tracking.registered_model_name(schema, params.model_name)
    primary = summary["primary_metric"]
    candidate = selected_scores(summary)[primary]["value"]
    digest = io.tree_digest(winner_dir)
    reused = tracking.find_version_by_digest(name, digest)
    champion, comparison, problem = tracking.champion_version(name), None, ""
    if champion is not None and reused != champion:
        champion, predicted, problem = champion_on_test(name, schema, test_frame)
        if predicted is not None:
            comparison = against_champion(schema, summary, test_frame, winner_dir, predicted)

    version = reused or _register_new(name, schema, summary, test_frame, winner_dir, digest)
    promote, reason = verdicts.champion_decision(primary, candidate, comparison, champion, reused)
    if problem:
        reason = f"{reason} ({problem})"
    if promote:
        tracking.set_champion(name, version)
    outcome = {
        "registered_model": name,
        "registered_version": version,
        "registration": "new" if reused is None else "reused",
        "champion": "moved" if promote else "kept",
        "champion_version": version if promote else str(champion),
        "champion_reason": reason,
    }
    if comparison is not None:
        outcome["champion_comparison"] = comparison["verdict"]
    # A champion reused as is keeps the decision that made it champion.
    if reused is None or reused != champion:
        tracking.set_version_tags(name, version, {"champion_decision": reason})
    tracking.set_tags(run_id, outcome)
    action = "champion -> v" + version if promote else f"champion stays v{champion}"
    verb = "registered" if reused is None else "reused (same model files; no new version)"
    log.info("%s %s v%s; %s: %s", verb, name, version, action, reason)
    return outcome


def _register_new(
    name: str,
    schema: Schema,
    summary: dict[str, Any],
    test_frame: pd.DataFrame,
    winner_dir: Path,
    digest: str,
) -> str:
    """Log the winner as a pyfunc model on the active run and register it; its version."""
    primary = summary["primary_metric"]
    example = datasets.feature_frame(test_frame.head(5), schema)
    info = tracking.log_model(winner_dir, schema, example, name="model")
    candidate = selected_scores(summary)[primary]
    tags = {
        "selected_model": summary["selected"]["model"],
        f"test_{primary}": f"{candidate['value']:.6f}",
        "test_digest": tracking.split_digest(SPLIT_FILES["test"]),
        "source": schema.source,
        tracking.DIGEST_TAG: digest,
    }
    if "ci_low" in candidate:
        tags[f"test_{primary}_ci"] = f"[{candidate['ci_low']:.6f}, {candidate['ci_high']:.6f}]"
    return tracking.register_model(info.model_uri, name, tags)
