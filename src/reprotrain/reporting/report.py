"""metrics/report.md: the evaluation summary as Markdown, readable on its own.

A pure function of the evaluate summary, the learning curve and the list of plot
images; no file or MLflow access here.
"""

from __future__ import annotations

from typing import Any

# Scores shown in the tables, in order; the ones where lower is better are marked.
REPORTED = {
    "classification": ["accuracy", "balanced_accuracy", "macro_f1", "log_loss", "roc_auc"],
    "regression": ["rmse", "mae", "r2"],
}
LOWER_IS_BETTER = {"log_loss", "rmse", "mae", "mse"}
MODEL_TITLES = {
    "baseline": "baseline",
    "strong_baseline": "strong baseline",
    "model": "trained",
    "tuned": "tuned",
}
PLOT_TITLES = {
    "confusion_matrix.png": "Confusion matrix (selected model, test)",
    "roc.png": "ROC curves (selected model, test)",
    "precision_recall.png": "Precision-recall curves (selected model, test)",
    "calibration.png": "Calibration (selected model, test)",
    "predicted_vs_actual.png": "Predicted vs actual (selected model, test)",
    "residuals.png": "Residuals (selected model, test)",
    "loss_curves.png": "Loss and score per epoch (train, first seed)",
    "learning_curve.png": "Learning curve (train vs dev)",
    "tuning_history.png": "Tuning history (dev)",
}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def with_ci(score: dict[str, float] | None) -> str:
    """'0.9750 [0.9583, 0.9889]' or just the value when there is no interval."""
    if not score:
        return "n/a"
    if "ci_low" not in score:
        return _number(score["value"])
    return f"{score['value']:.4f} [{score['ci_low']:.4f}, {score['ci_high']:.4f}]"


def mean_std(score: dict[str, float] | None) -> str:
    return "n/a" if not score else f"{score['mean']:.4f} ± {score['std']:.4f}"


def _label(metric: str) -> str:
    return f"{metric} (lower is better)" if metric in LOWER_IS_BETTER else metric


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def scores_table(summary: dict[str, Any]) -> list[str]:
    test, metrics = summary["test"], REPORTED[summary["task"]]
    n_seeds = len(test["model"]["seeds"])
    header = [
        "metric",
        "baseline",
        "strong baseline",
        f"trained (mean ± std, {n_seeds} seeds)",
        "tuned",
    ]
    rows = [
        [
            _label(metric),
            with_ci(test["baseline"].get(metric)),
            with_ci(test["strong_baseline"].get(metric)),
            mean_std(test["model"]["mean"].get(metric)),
            with_ci(test["tuned"].get(metric)),
        ]
        for metric in metrics
    ]
    return _table(header, rows)


def seeds_table(summary: dict[str, Any]) -> list[str]:
    seeds = summary["test"]["model"]["seeds"]
    header = ["metric", *seeds]
    rows = [
        [_label(metric), *(with_ci(scores.get(metric)) for scores in seeds.values())]
        for metric in REPORTED[summary["task"]]
    ]
    return _table(header, rows)


def per_class_table(per_class: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        [label, str(row["support"]), with_ci(row["precision"]), with_ci(row["recall"])]
        for label, row in per_class.items()
    ]
    return _table(["class", "test rows", "precision", "recall"], rows)


def fit_table(fit: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        [
            MODEL_TITLES[name],
            _number(verdict.get("train_score")),
            _number(verdict.get("dev_score")),
            f"{verdict['train_dev_gap']:.4f}",
            f"{verdict['skill']:.0%}",
            f"**{verdict['verdict']}**",
        ]
        for name, verdict in fit.items()
    ]
    return _table(["model", "train", "dev", "train − dev", "skill", "verdict"], rows)


def curve_table(curve: list[dict[str, float]]) -> list[str]:
    rows = [
        [
            f"{row['fraction']:.0%}",
            str(int(row["n_train"])),
            f"{row['train_score']:.4f}",
            f"{row['dev_score']:.4f}",
        ]
        for row in curve
    ]
    return _table(["share of train", "train rows", "train score", "dev score"], rows)


def validation_line(validation: dict[str, Any]) -> str:
    """Where the dev scores come from: the dev split, or cross-validation of train+dev."""
    if validation["method"] != "cross-validation":
        return "Dev scores: the dev split (models fitted on the train split)."
    return (
        f"Dev scores: {validation['folds']}-fold cross-validation over the "
        f"{validation['rows']} train+dev rows ({validation['repeats']} repeat(s)), the mean "
        "over the folds (choices between models: paired on the out-of-fold predictions); "
        f"the final models are refit on all {validation['refit_rows']} rows."
    )


def render(summary: dict[str, Any], curve: list[dict[str, float]], images: list[str]) -> str:
    """The whole report; `images` are PNG file names under plots/ (linked relatively)."""
    selected, primary = summary["selected"], summary["primary_metric"]
    fit, boot = summary["fit"][selected["model"]], summary["bootstrap"]
    more_data = summary["learning_curve"]
    title = MODEL_TITLES[selected["model"]]
    lines = [
        "# Evaluation report",
        "",
        f"Data: `{summary['source']}` ({summary['task']}, {summary['n_test']} test rows). "
        f"Primary metric: **{primary}** (higher is better).",
        "",
        f"Selected model: **{title}** — {selected['reason']}. The choice uses dev scores "
        "only; the test set played no part in it.",
        "",
        validation_line(summary.get("validation", {"method": "holdout"})),
        "",
        "## Verdict",
        "",
        f"- Fit ({title}): **{fit['verdict']}** — {fit['reason']}.",
        f"  Remedy: {fit['remedy']}.",
        f"- Learning curve: **{more_data['verdict']}** — {more_data['reason']}.",
        "",
        f"## Test scores ({boot['confidence']:.0%} bootstrap CI, "
        f"{boot['n_resamples']} resamples, seed {boot['seed']})",
        "",
        *scores_table(summary),
        "",
        "### Trained model, per seed",
        "",
        *seeds_table(summary),
        "",
    ]
    if summary.get("per_class"):
        lines += [f"### Per class ({title}, test)", "", *per_class_table(summary["per_class"]), ""]
    lines += [
        f"## Fit diagnosis (train vs dev {primary}; baseline dev {summary['baseline_dev']:.4f})",
        "",
        *fit_table(summary["fit"]),
        "",
        "Skill: how far the train score goes from the baseline towards a perfect score.",
        "",
    ]
    if curve:
        lines += [f"## Learning curve (dev {primary}, first train seed)", ""]
        lines += [*curve_table(curve), ""]
    if images:
        lines += ["## Plots", ""]
        for image in images:
            caption = PLOT_TITLES.get(image, image)
            lines += [f"### {caption}", "", f"![{caption}](plots/{image})", ""]
    return "\n".join(lines).rstrip() + "\n"


# --- leakage audit (split) -------------------------------------------------------------


def leakage_section(audit: dict[str, Any] | None) -> list[str]:
    """The split's leakage audit (metrics/split.json `leakage`) as a report section:
    what each check counted, and the columns it names. Empty for a split without one."""
    if not audit:
        return []
    duplicates = audit["near_duplicates"]
    order = ("train_dev", "train_test", "dev_test")
    pairs = ", ".join(f"{name.replace('_', '/')} {duplicates['pairs'][name]}" for name in order)
    lines = [
        "## Leakage audit (split)",
        "",
        f"- Near-duplicates across splits ({duplicates['method']}): **{duplicates['rows']}** "
        f"rows ({pairs}).",
    ]
    leak = audit.get("target_leak")
    if leak:
        named = ", ".join(
            f"`{item['column']}` {item['dev_score']:.4f}" for item in leak["suspects"]
        )
        best = ", ".join(
            f"`{item['column']}` {item['dev_score']:.4f}" for item in leak["top_single_features"]
        )
        lines.append(
            f"- Target leak (one feature alone, dev {leak['metric']}; all features "
            f"{leak['all_features_dev_score']:.4f}): "
            + (f"**suspected: {named}**." if named else f"none; best single features {best}.")
        )
    else:
        lines.append("- Target leak: not checked (image data).")
    ids = audit["identifiers"]
    if ids["suspects"]:
        named = ", ".join(
            f"`{item['column']}` (target {item['target_rank_correlation']:.2f}, row order "
            f"{item['row_order_rank_correlation']:.2f})"
            for item in ids["suspects"]
        )
        lines.append(f"- Identifier-like columns following the target or row order: **{named}**.")
    else:
        checked = ", ".join(f"`{name}`" for name in ids["checked"]) or "none found"
        lines.append(
            f"- Identifier-like columns following the target or row order: none ({checked})."
        )
    return [
        *lines,
        "",
        "Details: `metrics/split.json` (`leakage`); docs/data.md#leakage-audit.",
        "",
    ]


# --- error analysis on dev (selected model) ---------------------------------------------


def _interval(row: Any, metric: str) -> str:
    return f"{row[metric]:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"


def mistakes_table(analysis: dict[str, Any]) -> list[str]:
    table = analysis["mistakes.csv"].head(10)
    if analysis["summary.json"]["task"] == "classification":
        header = ["dev row", "true", "predicted", "p(predicted)", "p(true)"]
        keys = ["dev_row", "true", "predicted", "p_predicted", "p_true"]
    else:
        header = ["dev row", "true", "predicted", "residual"]
        keys = ["dev_row", "true", "predicted", "residual"]
    rows = [
        [f"{value:.4g}" if isinstance(value, float) else str(value) for value in row]
        for row in table[keys].itertuples(index=False)
    ]
    return _table(header, rows)


def where_to_look(analysis: dict[str, Any]) -> list[str]:
    """Bullets drawn only from the analysis's numbers: the slices below the overall
    score beyond their interval, the costliest confusion, the confident mistakes."""
    summary, slices = analysis["summary.json"], analysis["slices.csv"]
    metric, overall = summary["metric"], summary["overall"]
    side = "above" if metric == "mae" else "below"
    lines = []
    below = slices[slices["below"]]
    if len(below):
        named = "; ".join(
            f"`{row['slice']}` {_interval(row, metric)} ({row['rows']} rows)"
            for _, row in below.head(5).iterrows()
        )
        lines.append(
            f"- Weak slices: {len(below)} of {summary['n_slices']} slices have dev {metric} "
            f"{side} the overall {overall:.4f} beyond their {summary['confidence']:.0%} "
            f"interval: {named}. Look at their rows first (more examples, better features "
            f"or label checks for them). By chance alone about {summary['n_slices'] / 40:.1f} "
            "of them would be."
        )
    else:
        lines.append(
            f"- No slice has dev {metric} {side} the overall {overall:.4f} beyond its "
            f"{summary['confidence']:.0%} interval ({summary['n_slices']} slices checked)."
        )
    pairs = analysis["confusion_pairs.csv"]
    if len(pairs):
        top = pairs.iloc[0]
        lines.append(
            f"- Costliest confusion: true `{top['true']}` predicted as `{top['predicted']}`, "
            f"{top['rows']} dev rows ({top['share_of_class']:.0%} of that class, "
            f"{top['rows'] / max(summary['n_mistakes'], 1):.0%} of the "
            f"{summary['n_mistakes']} mistakes)."
        )
    if summary.get("n_mistakes"):
        lines.append(
            f"- {summary['confident_mistakes']} of the {summary['n_mistakes']} dev mistakes "
            "were made with probability ≥ 0.9: check their labels (the table below)."
        )
    return lines


def dev_errors_section(analysis: dict[str, Any] | None, title: str, grid: str | None) -> list[str]:
    """The selected model's error analysis on dev (metrics/dev_errors/<model>/)."""
    if not analysis:
        return [
            "## Errors on dev",
            "",
            f"No error analysis for the {title} model (only the trained and tuned models "
            "have one).",
            "",
        ]
    summary = analysis["summary.json"]
    metric = summary["metric"]
    worst = "Most confident mistakes" if metric == "accuracy" else "Largest residuals"
    lines = [
        f"## Errors on dev ({title} model, {summary['n_dev']} dev rows; never test)",
        "",
        "### Where to look next",
        "",
        *where_to_look(analysis),
        "",
        f"### {worst}",
        "",
        *mistakes_table(analysis),
        "",
    ]
    if grid:
        lines += [f"![{worst} on dev](plots/{grid})", ""]
    pairs = analysis["confusion_pairs.csv"]
    if len(pairs):
        rows = [
            [
                str(row["true"]),
                str(row["predicted"]),
                str(row["rows"]),
                f"{row['share_of_class']:.1%}",
            ]
            for _, row in pairs.iterrows()
        ]
        lines += ["### Confusion pairs (most costly first)", ""]
        lines += [*_table(["true", "predicted", "dev rows", "share of the class"], rows), ""]
    slices = analysis["slices.csv"].head(10)
    rows = [
        [
            f"`{row['slice']}`",
            str(row["rows"]),
            _interval(row, metric),
            "**below**" if row["below"] else "",
        ]
        for _, row in slices.iterrows()
    ]
    lines += [
        f"### Weakest slices (dev {metric}, {summary['confidence']:.0%} bootstrap CI; "
        f"overall {summary['overall']:.4f})",
        "",
        *_table(["slice", "dev rows", metric, "flag"], rows),
        "",
        "All slices: `metrics/dev_errors/<model>/slices.csv`.",
        "",
    ]
    return lines


# --- paired comparisons (test) ---------------------------------------------------------


def paired_section(paired: dict[str, Any] | None, primary: str) -> list[str]:
    """The selected model minus each alternative on the same test resamples."""
    if not paired:
        return []
    selected = MODEL_TITLES[paired["selected"]]
    metrics = [
        metric
        for metric in REPORTED["classification"] + REPORTED["regression"]
        if any(metric in scores for scores in paired["against"].values())
    ]
    rows = []
    for other, scores in paired["against"].items():
        for metric in metrics:
            if metric not in scores:
                continue
            item = scores[metric]
            verdict = f"**{item['verdict']}**" if metric == primary else item["verdict"]
            rows.append(
                [
                    f"{selected} − {MODEL_TITLES[other]}",
                    _label(metric),
                    f"{item['difference']:+.4f} [{item['ci_low']:+.4f}, {item['ci_high']:+.4f}]",
                    verdict,
                ]
            )
    headline = []
    for other, scores in paired["against"].items():
        if primary in scores:
            verdict = scores[primary]["verdict"]
            headline.append(
                f"- {selected} vs {MODEL_TITLES[other]}: **{verdict}** on test {primary}"
                + (
                    " (the interval of the difference includes 0)"
                    if verdict == "within noise"
                    else ""
                )
                + "."
            )
    return [
        f"## Paired comparisons on test ({paired['confidence']:.0%} paired bootstrap CI of "
        f"the difference, the same {paired['n_resamples']} resamples for both models)",
        "",
        *headline,
        "",
        *_table(["difference", "metric", "selected − other [CI]", "verdict"], rows),
        "",
        f"The trained model is its first seed (`{paired['trained_seed']}`). Better or worse "
        "means the whole interval of the difference lies on that side of 0.",
        "",
    ]
