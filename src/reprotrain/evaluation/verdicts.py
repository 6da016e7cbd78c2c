"""Verdicts drawn from scores: over- or under-fitting with its remedy, whether more data
would help, and whether a new model should replace the registered champion."""

from __future__ import annotations

from typing import Any

REMEDIES = {
    "overfitting": "more data, more regularization (dropout, L1/L2), earlier stopping, "
    "a smaller model",
    "underfitting": "a bigger model, less regularization, more epochs or a higher learning rate",
    "good fit": "none needed; more data or tuning may still help",
}


def fit_verdict(
    train_score: float,
    dev_score: float,
    baseline_dev_score: float,
    overfit_gap: float,
    underfit_skill: float,
) -> dict[str, Any]:
    """Over-, under- or good fit from train vs dev vs baseline, with the remedy named.

    Skill is how far the model's train score goes from the baseline towards a perfect
    score (1.0): below `underfit_skill` the model has not learned the training data. A
    train-dev gap above `overfit_gap` means it learned the training data too well.
    """
    headroom = max(1.0 - baseline_dev_score, 1e-12)
    skill = (train_score - baseline_dev_score) / headroom
    gap = train_score - dev_score
    if skill < underfit_skill:
        verdict = "underfitting"
        reason = (
            f"train score {train_score:.4f} is only {skill:.0%} of the way from "
            f"baseline {baseline_dev_score:.4f} to perfect (threshold {underfit_skill:.0%})"
        )
    elif gap > overfit_gap:
        verdict = "overfitting"
        reason = (
            f"train {train_score:.4f} exceeds dev {dev_score:.4f} by {gap:.4f} "
            f"(threshold {overfit_gap})"
        )
    else:
        verdict = "good fit"
        reason = (
            f"train {train_score:.4f}, dev {dev_score:.4f} (gap {gap:.4f} <= "
            f"{overfit_gap}), baseline {baseline_dev_score:.4f}"
        )
    return {
        "verdict": verdict,
        "reason": reason,
        "remedy": REMEDIES[verdict],
        "train_dev_gap": gap,
        "skill": skill,
        "train_score": train_score,
        "dev_score": dev_score,
    }


def more_data_verdict(curve: list[dict[str, float]], min_gain: float) -> dict[str, Any]:
    """Would more training data help? From the dev score over the last learning-curve step."""
    rows = sorted(curve, key=lambda row: row["fraction"])
    if len(rows) < 2:
        return {
            "verdict": "unknown",
            "reason": "the learning curve needs at least 2 fractions of the training data",
            "gain": None,
        }
    before, last = rows[-2], rows[-1]
    gain = float(last["dev_score"] - before["dev_score"])
    step = f"{before['fraction']:.0%} to {last['fraction']:.0%} of the training data"
    if gain > min_gain:
        verdict = "more data likely helps"
        reason = f"dev score rose {gain:+.4f} from {step} (above {min_gain})"
    else:
        verdict = "more data unlikely to help much"
        reason = f"dev score changed {gain:+.4f} from {step} (not above {min_gain})"
    return {"verdict": verdict, "reason": reason, "gain": gain}


def champion_decision(
    metric: str,
    candidate_score: float,
    against_champion: dict[str, Any] | None,
    champion_version: str | None,
    candidate_version: str | None = None,
) -> tuple[bool, str]:
    """Move the champion alias only when the candidate beats it beyond the noise.

    `against_champion` is the paired comparison on the primary metric of the candidate
    minus the current champion, both scored on the same test resamples
    ({difference, ci_low, ci_high, verdict}; None: the champion could not be scored). The
    alias moves only on the verdict "better": the whole interval of the difference lies on
    the better side of 0. `candidate_version`: the registered version the winner already is
    (same files), if any; when that is the champion, there is nothing to decide.
    """
    if champion_version is not None and candidate_version == champion_version:
        return False, f"v{champion_version} is the champion already (the same model files)"
    if champion_version is None:
        return True, f"no champion yet; test {metric} {candidate_score:.4f}"
    if against_champion is None:
        return False, f"champion v{champion_version} could not be scored on this test set"
    difference = against_champion["difference"]
    interval = f"[{against_champion['ci_low']:+.4f}, {against_champion['ci_high']:+.4f}]"
    compared = (
        f"test {metric} {candidate_score:.4f} vs champion v{champion_version} "
        f"{candidate_score - difference:.4f}: difference {difference:+.4f} {interval} "
        "(paired bootstrap)"
    )
    if against_champion["verdict"] == "better":
        return True, f"{compared}: beats the champion beyond the noise"
    return False, f"{compared}: {against_champion['verdict']}, the champion stays"
