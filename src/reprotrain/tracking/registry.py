"""The evaluated winner in the MLflow Model Registry, and when the `champion` alias moves.

An evaluate run registers its winner as a new version (with signature and input example)
unless a version of the same registered model holds the same files already (the version
tag `model_digest`): then that version is reused, so rerunning the pipeline adds nothing
to the registry. The alias `champion` moves to the winner only when its test score's
lower confidence bound beats the current champion rescored on the same test set;
otherwise the run and the version carry the reason. MLflow calls go through
`reprotrain.tracking`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotrain import metrics, tracking
from reprotrain.config.paths import SPLIT_FILES
from reprotrain.data import datasets, io
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
    """Register the winner (or reuse its version); move `champion` if it wins beyond the
    interval."""
    name = tracking.registered_model_name(schema, params.model_name)
    primary = summary["primary_metric"]
    candidate = selected_scores(summary)[primary]
    digest = io.tree_digest(winner_dir)
    reused = tracking.find_version_by_digest(name, digest)
    champion: str | None
    if reused is not None and reused == tracking.champion_version(name):
        champion, champion_score, problem = reused, None, ""  # nothing to rescore
    else:
        y_true = datasets.encode_target(test_frame, schema)
        champion, champion_score, problem = champion_on_test(name, schema, test_frame, y_true)

    version = reused or _register_new(name, schema, summary, test_frame, winner_dir, digest)
    promote, reason = verdicts.champion_decision(
        primary, candidate, champion_score, champion, reused
    )
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
