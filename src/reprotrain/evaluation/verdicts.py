"""Verdicts drawn from scores: over- or under-fitting with its remedy, whether more data
would help, and whether a new model should replace the registered champion."""

from __future__ import annotations

from typing import Any

REMEDIES = {  # for a model of no known family
    "overfitting": "more data, more regularization (dropout, L1/L2), earlier stopping, "
    "a smaller model",
    "underfitting": "a bigger model, less regularization, more epochs or a higher learning rate",
    "good fit": "none needed; more data or tuning may still help",
}
# The knobs of each family, by their params.yaml keys: (overfitting, underfitting).
_TREES = (
    "fewer or smaller leaves (train.{m}.max_leaf_nodes down, min_samples_leaf up), more "
    "L2 (l2_regularization up), a lower learning_rate",
    "more leaves (train.{m}.max_leaf_nodes up, min_samples_leaf down), more iterations "
    "(max_iter up), a higher learning_rate",
)
FAMILY_REMEDIES = {
    "hist_gradient_boosting": _TREES,
    "random_forest": (
        "shallower trees (train.random_forest.max_depth down, min_samples_leaf up)",
        "deeper trees (train.random_forest.max_depth up or null, min_samples_leaf down)",
    ),
    "logistic_regression": (
        "stronger regularization (train.logistic_regression.C down)",
        "weaker regularization (train.logistic_regression.C up) or a more flexible model "
        "(train.model: hist_gradient_boosting)",
    ),
    "linear_regression": (
        "stronger regularization (train.linear_regression.alpha up)",
        "weaker regularization (train.linear_regression.alpha down) or a more flexible "
        "model (train.model: hist_gradient_boosting)",
    ),
    "svm": (
        "stronger regularization (train.svm.C down)",
        "weaker regularization (train.svm.C up) or kernel rbf",
    ),
    "mlp": (
        "more dropout (train.mlp.dropout up), more weight decay (train.optim.weight_decay "
        "up), earlier stopping (train.early_stopping.patience down)",
        "a wider net (train.mlp.hidden_sizes), less dropout, more epochs "
        "(train.optim.epochs) or a higher learning rate (train.optim.lr)",
    ),
    "cnn": (
        "more dropout (train.cnn.dropout up), more weight decay (train.optim.weight_decay "
        "up), augmentation (train.augment), earlier stopping (train.early_stopping.patience "
        "down)",
        "more channels (train.cnn.channels), less dropout, more epochs (train.optim.epochs) "
        "or a higher learning rate (train.optim.lr)",
    ),
}


def remedy(verdict: str, model: str | None, more_data_helps: bool | None) -> str:
    """The remedy for a verdict, named in the model family's own params. More data is
    offered for overfitting only when the learning curve does not say it would not help."""
    if verdict == "good fit":
        if more_data_helps is None:
            return REMEDIES[verdict]
        if more_data_helps:
            return "none needed; more data should still help (the learning curve rises)"
        return "none needed; tuning may still help"
    if model not in FAMILY_REMEDIES:
        return REMEDIES[verdict]
    overfit, underfit = FAMILY_REMEDIES[model]
    if verdict == "underfitting":
        return underfit.format(m=model)
    more_data = "more data, " if more_data_helps is not False else ""
    return more_data + overfit.format(m=model)


def fit_verdict(
    train_score: float,
    dev_score: float,
    baseline_dev_score: float,
    overfit_gap: float,
    underfit_skill: float,
    *,
    model: str | None = None,
    reachable_dev_score: float | None = None,
    more_data_helps: bool | None = None,
) -> dict[str, Any]:
    """Over-, under- or good fit from train vs dev vs baseline, with the remedy named for
    the model's family (`model`, a train.model name).

    Skill is how far the model's train score goes from the baseline towards a perfect
    score (1.0): below `underfit_skill` the model has not learned the training data, unless
    its dev score reaches what a simple model shows is reachable (`reachable_dev_score`:
    the strong baseline's dev score): then the target is noisy, not the model too weak,
    and a fixed share of a perfect score cannot be asked of it. A train-dev gap above
    `overfit_gap` means it learned the training data too well. `more_data_helps`: the
    learning curve's verdict (None: unknown), so that no remedy contradicts it.
    """
    headroom = max(1.0 - baseline_dev_score, 1e-12)
    skill = (train_score - baseline_dev_score) / headroom
    gap = train_score - dev_score
    reaches = reachable_dev_score is not None and dev_score >= reachable_dev_score
    if skill < underfit_skill and not reaches:
        verdict = "underfitting"
        reason = (
            f"train score {train_score:.4f} is only {skill:.0%} of the way from "
            f"baseline {baseline_dev_score:.4f} to perfect (threshold {underfit_skill:.0%})"
        )
        if reachable_dev_score is not None:
            reason += f", and dev {dev_score:.4f} is below the strong baseline's " + (
                f"{reachable_dev_score:.4f}"
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
        if skill < underfit_skill:  # reaches what a simple model reaches: a noisy target
            reason += (
                f"; train is only {skill:.0%} of the way to perfect, but dev reaches the "
                f"strong baseline's {reachable_dev_score:.4f}: the target looks noisy"
            )
    return {
        "verdict": verdict,
        "reason": reason,
        "remedy": remedy(verdict, model, more_data_helps),
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
