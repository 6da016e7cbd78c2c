"""No-op `dvc repro` of this pipeline against DVC's own floor, measured in one run.

    python benchmarks/noop_repro.py [--rounds 7] [--rev HEAD] [--keep]   (`make bench` runs it)

(a) this repository's committed pipeline (HEAD, or --rev), cloned into a temporary directory
    where every stage is made cached: by default with a copy of the workspace's outputs,
    recorded with `dvc commit --force` (only the timing is measured, so they need not match the
    code), or, if the workspace lacks one of them or with --setup repro, by running the whole
    pipeline once there. The workspace, its outputs and its MLflow store are not touched;
(b) a trivial two-stage pipeline in a temporary git repository (stage 1 writes a file,
    stage 2 copies it).
Both are timed as `dvc repro` with nothing to do, in interleaved rounds; the medians give the
ratio. Floor: (a) <= 1.5 x (b). Exit 1 above it, 2 if the benchmark could not run. Results:
printed, and written to benchmarks/results/noop_repro.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench_args import positive_int

REPO = Path(__file__).resolve().parents[1]
FLOOR = 1.5
RESULTS = Path(__file__).resolve().parent / "results" / "noop_repro.md"
DVC = str(Path(sys.executable).parent / "dvc")

TRIVIAL_DVC_YAML = """\
stages:
  write:
    cmd: python -c "open('a.txt', 'w').write('a')"
    outs: [a.txt]
  copy:
    cmd: cp a.txt b.txt
    deps: [a.txt]
    outs: [b.txt]
"""


class BenchError(Exception):
    pass


@dataclass
class Times:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system of the dvc process


def run(cmd: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = ((done.stderr + done.stdout).strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"`{' '.join(cmd)}` failed in {cwd} (exit {done.returncode}): {last}")
    return done.stdout


def bench_env(workdir: Path) -> dict[str, str]:
    """The venv's python first; MLflow and DVC state of the temporary copies only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "bench"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "bench@localhost"
    return env


def setup_ours(dest: Path, rev: str, setup: str, env: Mapping[str, str]) -> None:
    commit = run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], REPO, env).strip()
    run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(REPO), str(dest)], REPO, env)
    run(["git", "checkout", "--quiet", "--detach", commit], dest, env)
    if setup == "copy" and copy_workspace_outputs(dest):
        print(f"setup: commit {commit[:12]} in {dest}, the workspace's outputs committed to DVC")
        run([DVC, "commit", "--force", "--quiet"], dest, env)
        return
    print(f"setup: `dvc repro` of commit {commit[:12]} in {dest} (runs the whole pipeline once)")
    run([DVC, "repro", "--quiet"], dest, env)


def copy_workspace_outputs(dest: Path) -> bool:
    """Copy every DVC output of dest's pipeline from the workspace; False if one is missing."""
    from dvc.repo import Repo  # heavy; only the benchmark needs it

    with Repo(str(dest)) as repo:
        outs = [(Path(str(out.def_path)), out.use_cache) for out in repo.index.outs]
    missing = [
        path
        for path, cached in outs
        if not (REPO / path).exists() and (cached or not (dest / path).exists())
    ]
    if missing:
        print(f"setup: the workspace lacks {missing[0]} (run `make repro` to reuse its outputs)")
        return False
    for path, cached in outs:
        source, target = REPO / path, dest / path
        if not source.exists() or (target.exists() and not cached):
            continue  # an uncached metric: the committed one stays
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    return True


def setup_trivial(dest: Path, env: Mapping[str, str]) -> None:
    dest.mkdir()
    run(["git", "init", "--quiet"], dest, env)
    run([DVC, "init", "--quiet"], dest, env)
    (dest / "dvc.yaml").write_text(TRIVIAL_DVC_YAML)
    run([DVC, "repro", "--quiet"], dest, env)
    run(["git", "add", "."], dest, env)
    run(["git", "commit", "--quiet", "-m", "trivial pipeline"], dest, env)


def noop_repro(repo: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `dvc repro`; fails if any stage actually ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = run([DVC, "repro"], repo, env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if "Running stage" in out:
        raise BenchError(f"`dvc repro` in {repo} was not a no-op: {out.splitlines()[0]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(repos: Mapping[str, Path], rounds: int, env: Mapping[str, str]) -> dict[str, Times]:
    """Interleaved rounds, the order alternating so neither side always runs first."""
    for repo in repos.values():  # warm-up: page cache, DVC's state database
        noop_repro(repo, env)
    times = {name: Times() for name in repos}
    for index in range(rounds):
        names = list(repos) if index % 2 == 0 else list(reversed(repos))
        for name in names:
            wall, cpu = noop_repro(repos[name], env)
            times[name].wall.append(wall)
            times[name].cpu.append(cpu)
    return times


def report(times: Mapping[str, Times]) -> tuple[float, float]:
    """Print each side's medians; return the (wall, CPU) ratios of ours to trivial."""
    for name, side in times.items():
        print(
            f"  {name:8s} wall median {statistics.median(side.wall):6.3f} s"
            f" (min {min(side.wall):.3f}, max {max(side.wall):.3f})"
            f"   CPU median {statistics.median(side.cpu):6.3f} s"
        )
    ours, trivial = times["ours"], times["trivial"]
    return (
        statistics.median(ours.wall) / statistics.median(trivial.wall),
        statistics.median(ours.cpu) / statistics.median(trivial.cpu),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=positive_int, default=7, help="interleaved rounds (default 7)"
    )
    parser.add_argument("--rev", default="HEAD", help="commit to benchmark (default HEAD)")
    parser.add_argument(
        "--setup",
        choices=("copy", "repro"),
        default="copy",
        help="cache the pipeline with the workspace's outputs (default) or by running it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="noop-bench-"))
    env = bench_env(workdir)
    repos = {"ours": workdir / "ours", "trivial": workdir / "trivial"}
    try:
        setup_ours(repos["ours"], args.rev, args.setup, env)
        setup_trivial(repos["trivial"], env)
        times = measure(repos, args.rounds, env)
    except BenchError as exc:
        print(f"error: noop_repro: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"no-op `dvc repro`, {args.rounds} interleaved rounds:")
    ratio, cpu_ratio = report(times)
    verdict = "ok" if ratio <= FLOOR else "FAIL"
    lines = [
        f"wall-time ratio ours / trivial: {ratio:.2f}x (floor <= {FLOOR}x): {verdict}",
        f"CPU-time ratio ours / trivial: {cpu_ratio:.2f}x (less sensitive to other load)",
        *(
            f"{name}: wall median {statistics.median(side.wall):.3f} s, "
            f"CPU median {statistics.median(side.cpu):.3f} s"
            for name, side in times.items()
        ),
    ]
    print("\n".join(lines[:2]))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        "# benchmarks/noop_repro.py\n\n"
        f"`.venv/bin/python benchmarks/noop_repro.py --rounds {args.rounds}` at {args.rev}, "
        f"{time.strftime('%Y-%m-%d')}:\n\n" + "".join(f"- {line}\n" for line in lines)
    )
    print(f"wrote {RESULTS}")
    return 0 if ratio <= FLOOR else 1


if __name__ == "__main__":
    sys.exit(main())
