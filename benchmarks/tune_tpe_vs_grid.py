"""TPE with pruning against exhaustive grid search on the default search space, in one run.

    python benchmarks/tune_tpe_vs_grid.py [--params params.yaml] [--tolerance 0.005]

Run from the repository root once `data/split` exists (`dvc repro split`). Both searches
use the tune stage's own code (objective, MLflow nested runs into a throw-away store,
trial runner) on `tune.space` from params.yaml:

(a) grid: `method: grid`, every point of the grid (`tune.grid_points` per range), no pruning;
(b) TPE: `method: tpe` with the pruner, budget and startup trials of params.yaml (a pruner
    `none` there is replaced by `median`).

It prints grid's best dev score and wall time, the time TPE takes to come within
`--tolerance` of that score, and the ratio of the two. Floor: ratio <= 1/3. Exit 1 above
it or when TPE never gets within the tolerance, 2 when the benchmark cannot run. The same
ratio in CPU seconds of this process (both searches run in it, one trial at a time) is
printed beside it: on a machine shared with other work it is the steadier of the two.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOOR = 1 / 3


@dataclass
class Outcome:
    name: str
    wall_s: float
    cpu_s: float
    # (wall seconds, CPU seconds) since the start at each trial's end, and its dev value
    marks: list[tuple[float, float, float | None]]
    states: dict[str, int]

    def best(self, sign: float) -> float:
        return max(sign * value for *_, value in self.marks if value is not None) * sign

    def time_to(self, target: float, sign: float) -> tuple[float, float] | None:
        for wall, cpu, value in self.marks:
            if value is not None and sign * value >= sign * target:
                return wall, cpu
        return None


def search(name: str, params, base, train_params, schema, train, dev) -> Outcome:
    """Run one search through the stage's objective and trial runner; time every trial."""
    from reprotrain import tracking, tuning
    from reprotrain.tracking.stage_logs import TrialRuns
    from reprotrain.training.validation import Holdout
    from reprotrain.tuning.runner import make_objective, make_search, search_params
    from reprotrain.tuning.trials import Budget, StudyLock, run_trials

    setup = make_search(base, *search_params(train_params, params), schema, Holdout(train, dev))
    max_epochs = tuning.max_epochs(params, setup.train_params)
    study = tuning.open_study(params, setup.objective, base.seed, None, max_epochs)
    marks: list[tuple[float, float, float | None]] = []
    with tracking.stage_run(f"benchmark-{name}", {"tune": params.model_dump()}) as run:
        run_objective = make_objective(setup, TrialRuns(run.info.run_id))
        start, start_cpu = time.perf_counter(), time.process_time()

        def timed(trial):
            value = None
            try:
                value = run_objective(trial)
                return value
            finally:
                now = (time.perf_counter() - start, time.process_time() - start_cpu)
                marks.append((*now, value))

        budget = Budget(tuning.trial_budget(params), params.timeout)
        run_trials(study, timed, budget, StudyLock(None, name), None, params.n_jobs)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return Outcome(name, wall, cpu, marks, tuning.state_counts(study))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--tolerance", type=float, default=0.005)
    args = parser.parse_args()

    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    store = tempfile.mkdtemp(prefix="tune-bench-")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    import logging

    from reprotrain import config
    from reprotrain.config.errors import UserError
    from reprotrain.config.paths import SCHEMA
    from reprotrain.data import io
    from reprotrain.training.fitting import configure_torch, load_train_dev

    logging.basicConfig(level=logging.WARNING)
    try:
        base, train_params, tune = config.load("base", "train", "tune", path=args.params)
        schema = io.read_json(SCHEMA)
        _, train, dev = load_train_dev(schema)
    except (UserError, OSError) as exc:
        print(f"error: cannot run the benchmark: {exc}", file=sys.stderr)
        return 2
    configure_torch(base)
    grid_params = tune.model_copy(update={"method": "grid", "n_trials": None, "pruner": "none"})
    pruner = tune.pruner if tune.pruner != "none" else "median"
    tpe_params = tune.model_copy(update={"method": "tpe", "pruner": pruner, "n_jobs": 1})
    data = (base, train_params, schema, train, dev)

    try:
        grid = search("grid", grid_params, *data)
        tpe = search("tpe", tpe_params, *data)
    finally:
        shutil.rmtree(store, ignore_errors=True)

    from reprotrain import tuning

    objective = tuning.resolve_objective(tune, schema["task"])
    sign = 1.0 if objective.direction == "maximize" else -1.0
    grid_best = grid.best(sign)
    target = grid_best - sign * args.tolerance
    reached = tpe.time_to(target, sign)
    fixed = ", ".join(f"{k}={v}" for k, v in tune.fixed.items()) or "none"
    print(f"search space: {', '.join(tune.space)}; fixed: {fixed}; {len(grid.marks)} grid points")
    print(
        f"grid: {len(grid.marks)} trials in {grid.wall_s:.1f} s wall, {grid.cpu_s:.1f} s CPU; "
        f"best dev {objective.metric} {grid_best:.4f}"
    )
    print(
        f"tpe+{pruner}: {len(tpe.marks)} trials {tpe.states} in {tpe.wall_s:.1f} s wall, "
        f"{tpe.cpu_s:.1f} s CPU; best dev {objective.metric} {tpe.best(sign):.4f}"
    )
    if reached is None:
        print(f"tpe never came within {args.tolerance} of grid's best ({target:.4f}): FAIL")
        return 1
    ratio, cpu_ratio = reached[0] / grid.wall_s, reached[1] / grid.cpu_s
    print(
        f"tpe reached dev {objective.metric} {target:.4f} (grid best - {args.tolerance}) after "
        f"{reached[0]:.1f} s wall, {reached[1]:.1f} s CPU"
    )
    print(
        f"ratio tpe time-to-target / grid time = {ratio:.3f} wall, {cpu_ratio:.3f} CPU "
        f"(floor <= {FLOOR:.3f}); tpe whole budget / grid = {tpe.wall_s / grid.wall_s:.3f} "
        f"wall, {tpe.cpu_s / grid.cpu_s:.3f} CPU"
    )
    verdict = "PASS" if ratio <= FLOOR else "FAIL"
    print(verdict)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
