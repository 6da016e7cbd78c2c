"""Where each stage reads and writes, relative to the repository root (dvc.yaml mirrors these)."""

from pathlib import Path

# The pipeline's wiring: each stage's command, deps, params and outputs (config/wiring.py reads
# the params lists).
DVC_FILE = Path("dvc.yaml")

PREPARED_DIR = Path("data/prepared")
PREPARED_DATA = PREPARED_DIR / "data.parquet"
SCHEMA = PREPARED_DIR / "schema.json"

SPLIT_DIR = Path("data/split")
SPLIT_FILES = {name: SPLIT_DIR / f"{name}.parquet" for name in ("train", "dev", "test")}
# Cross-validation folds over train+dev (data/folds.py): no columns when there are none.
FOLDS = SPLIT_DIR / "folds.parquet"

MODELS_DIR = Path("models")
BASELINE_DIR = MODELS_DIR / "baseline"
# An untuned scaled linear model beside every model: what a simple method reaches.
STRONG_BASELINE_DIR = MODELS_DIR / "strong_baseline"
MODEL_DIR = MODELS_DIR / "model"
TUNED_DIR = MODELS_DIR / "tuned"
# Per-epoch training checkpoints (not a DVC output): a killed `train` resumes from here.
CHECKPOINT_DIR = Path(".checkpoints/train")

METRICS_DIR = Path("metrics")
PREPARE_METRICS = METRICS_DIR / "prepare.json"
SPLIT_METRICS = METRICS_DIR / "split.json"
TRAIN_METRICS = METRICS_DIR / "train.json"
TRAIN_HISTORY = METRICS_DIR / "train_history.csv"
LEARNING_CURVE = METRICS_DIR / "learning_curve.csv"
TUNE_METRICS = METRICS_DIR / "tune.json"
TUNE_TRIALS = METRICS_DIR / "tune_trials.csv"
# The complete trials of TUNE_TRIALS with the best dev score so far (the DVC plot).
TUNE_HISTORY = METRICS_DIR / "tune_history.csv"
# The dev error analysis of the trained model (first seed, by train) and the tuned one
# (by tune): plain outputs that evaluate's report shows for the selected model.
DEV_ERRORS_DIR = METRICS_DIR / "dev_errors"
DEV_ERRORS = {"model": DEV_ERRORS_DIR / "model", "tuned": DEV_ERRORS_DIR / "tuned"}
# Under cross-validation, beside the analysis: the out-of-fold predictions evaluate chooses on.
CV_PREDICTIONS = "cv_predictions.csv"
EVALUATE_METRICS = METRICS_DIR / "evaluate.json"
# The headline numbers: the one file dvc.yaml declares as metrics (dvc metrics, dvc exp show).
SUMMARY_METRICS = METRICS_DIR / "summary.json"
REPORT = METRICS_DIR / "report.md"
# Evaluation plots: CSV tables (DVC plots, see dvc.yaml) and PNG images (report, MLflow).
PLOTS_DIR = METRICS_DIR / "plots"
PLOT_TABLES = ("confusion", "roc", "precision_recall", "calibration", "residuals")


def seed_dir(root: Path, seed: int) -> Path:
    return root / f"seed-{seed}"


# Each stage's outputs (dvc.yaml declares the same), replaced together (data/outputs.py).
STAGE_OUTPUTS: dict[str, tuple[Path, ...]] = {
    "prepare": (PREPARED_DIR, PREPARE_METRICS),
    "split": (*SPLIT_FILES.values(), FOLDS, SPLIT_METRICS),
    "train": (
        BASELINE_DIR,
        STRONG_BASELINE_DIR,
        MODEL_DIR,
        LEARNING_CURVE,
        TRAIN_METRICS,
        TRAIN_HISTORY,
        DEV_ERRORS["model"],
    ),
    "tune": (TUNED_DIR, TUNE_METRICS, TUNE_TRIALS, TUNE_HISTORY, DEV_ERRORS["tuned"]),
    "evaluate": (PLOTS_DIR, REPORT, EVALUATE_METRICS, SUMMARY_METRICS),
}

# Which stage writes each pipeline file: named in the message when one is missing or broken.
PRODUCERS = {output: stage for stage, outs in STAGE_OUTPUTS.items() for output in outs}


def producer(path: Path) -> str | None:
    """The stage that writes `path` (a file of the pipeline, or one inside its folders)."""
    path = Path(path)
    for output, stage in PRODUCERS.items():
        if path == output or output in path.parents:
            return stage
    return None
