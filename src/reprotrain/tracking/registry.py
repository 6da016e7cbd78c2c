"""The evaluated winner in the MLflow Model Registry, and when the `champion` alias moves.

Every evaluate run registers its winner as a new version (with signature and input
example). The alias `champion` moves to it only when its test score's lower confidence
bound beats the current champion rescored on the same test set; otherwise the run and
the version carry the reason. MLflow calls go through `reprotrain.tracking`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotrain import metrics, tracking
from reprotrain.config.paths import SPLIT_FILES
from reprotrain.data import datasets
from reprotrain.data.schema import Schema
from reprotrain.evaluation import verdicts
from reprotrain.evaluation.summary import selected_scores

log = logging.getLogger(__name__)


def frame_score(schema: Schema, y_true: np.ndarray, predictions: pd.DataFrame) -> float:
    """The primary score of a pyfunc prediction frame (column `prediction`)."""
    predicted = predictions["prediction"].tolist()
    if schema.task == "classification":
        index = {label: position for position, label in enumerate(schema.labels)}
        labels = np.array([index.get(label, -1) for label in predicted])
        return metrics.scores("classification", y_true, labels)["accuracy"]
    return metrics.scores("regression", y_true, np.asarray(predicted, dtype=np.float64))["r2"]


def champion_on_test(
    name: str, schema: Schema, test_frame: pd.DataFrame, y_true: np.ndarray
) -> tuple[str | None, float | None, str]:
    """(version, score on this test set, problem) of the current champion, if any."""
    version = tracking.champion_version(name)
    if version is None:
        return None, None, ""
    try:
        rows = datasets.feature_frame(test_frame, schema)
        predictions = tracking.predict_registered(name, rows)
        return version, frame_score(schema, y_true, predictions), ""
    except Exception as exc:  # noqa: BLE001 - any failure means it cannot be compared
        return version, None, f"{type(exc).__name__}: {exc}"[:300]


def register_winner(
    run_id: str,
    params: Any,
    schema: Schema,
    summary: dict[str, Any],
    test_frame: pd.DataFrame,
    winner_dir: Path,
) -> dict[str, str]:
    """Log and register the winner; move `champion` if it wins beyond the interval."""
    name = tracking.registered_model_name(schema, params.model_name)
    primary = summary["primary_metric"]
    y_true = datasets.encode_target(test_frame, schema)
    champion, champion_score, problem = champion_on_test(name, schema, test_frame, y_true)

    example = datasets.feature_frame(test_frame.head(5), schema)
    info = tracking.log_model(winner_dir, schema, example, name="model")
    candidate = selected_scores(summary)[primary]
    tags = {
        "selected_model": summary["selected"]["model"],
        f"test_{primary}": f"{candidate['value']:.6f}",
        "test_digest": tracking.split_digest(SPLIT_FILES["test"]),
        "source": schema.source,
    }
    if "ci_low" in candidate:
        tags[f"test_{primary}_ci"] = f"[{candidate['ci_low']:.6f}, {candidate['ci_high']:.6f}]"
    version = tracking.register_model(info.model_uri, name, tags)

    promote, reason = verdicts.champion_decision(primary, candidate, champion_score, champion)
    if problem:
        reason = f"{reason} ({problem})"
    if promote:
        tracking.set_champion(name, version)
    outcome = {
        "registered_model": name,
        "registered_version": version,
        "champion": "moved" if promote else "kept",
        "champion_version": version if promote else str(champion),
        "champion_reason": reason,
    }
    tracking.set_version_tags(name, version, {"champion_decision": reason})
    tracking.set_tags(run_id, outcome)
    action = "champion -> v" + version if promote else f"champion stays v{champion}"
    log.info("registered %s v%s; %s: %s", name, version, action, reason)
    return outcome
