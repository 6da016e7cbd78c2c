"""Logging a 100-epoch train run to a team tracking server against the local SQLite store.

    python benchmarks/tracking_server.py [--epochs 100] [--rounds 3]

(a) the team server of docs/scale-out.md: `scripts/tracking_server.sh` over a throw-away
    PostgreSQL cluster and moto's S3 API, all on 127.0.0.1 (the servers of tests/servers.py);
(b) a fresh SQLite store (`sqlite:///.../mlflow.db`), the default.
Each round logs, in a fresh process, what train logs: a stage run with its params, per-epoch
metrics through the pipeline's own code (`tracking.stage_run`, `runs.log_epoch`) and a small
artifact, in interleaved rounds; the medians give the ratio. Floor: (a) <= 1.5 x (b). Exit 1
above it, 2 if a server could not start. Results: printed, and written to
benchmarks/results/tracking_server.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_args import positive_int

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
FLOOR = 1.5
RESULTS = Path(__file__).resolve().parent / "results" / "tracking_server.md"
BUCKET = "bench"

LOG_RUN = """\
import sys, tempfile
from pathlib import Path
from reprotrain import tracking
from reprotrain.tracking import runs
epochs = int(sys.argv[1])
with tracking.stage_run("train", {"train": {"epochs": epochs, "model": "mlp"}}) as run:
    for epoch in range(1, epochs + 1):
        runs.log_epoch(run.info.run_id, {"epoch": epoch, "train_loss": 1 / epoch,
                                         "dev_loss": 1.1 / epoch, "dev_accuracy": 1 - 1 / epoch})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "train_history.csv").write_text("epoch,dev_loss\\n" * epochs)
        runs.client_call("log_artifact", run.info.run_id, str(Path(tmp) / "train_history.csv"))
"""


def log_once(uri: str, epochs: int) -> float:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", LOG_RUN, str(epochs)], cwd=REPO, env=env, check=True, timeout=600
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--rounds", type=positive_int, default=3)
    args = parser.parse_args()
    import servers

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        keys = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench-secret"}
        try:
            with servers.postgres_server() as postgres, servers.s3_server(home / "s3.log") as s3:
                servers.create_bucket(s3, BUCKET, keys)
                env = {
                    **os.environ,
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    "MLFLOW_BACKEND_STORE_URI": servers.create_owned_database(
                        postgres, "mlflow", "bench-pw"
                    ),
                    "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/mlflow",
                    "MLFLOW_S3_ENDPOINT_URL": s3,
                    "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"],
                    "AWS_DEFAULT_REGION": "us-east-1",
                }
                with servers.tracking_server(env, home / "mlflow.log") as url:
                    sqlite = f"sqlite:///{home / 'mlflow.db'}"
                    log_once(url, 1), log_once(sqlite, 1)  # warm up: create the experiment
                    server, local = [], []
                    for _ in range(args.rounds):
                        server.append(log_once(url, args.epochs))
                        local.append(log_once(sqlite, args.epochs))
        except BaseException as error:  # pytest.skip (a server binary absent) included
            if isinstance(error, KeyboardInterrupt):
                raise
            print(f"tracking_server benchmark: could not start the servers: {error}")
            return 2
    ratio = statistics.median(server) / statistics.median(local)
    verdict = "ok" if ratio <= FLOOR else "ABOVE FLOOR"
    lines = [
        "# Tracking server vs local SQLite store",
        "",
        f"`python benchmarks/tracking_server.py --epochs {args.epochs} --rounds {args.rounds}`: "
        f"one {args.epochs}-epoch train run logged per round (fresh process each).",
        "",
        "| store | median s | rounds s |",
        "|---|---|---|",
        f"| server (PostgreSQL + S3, 127.0.0.1) | {statistics.median(server):.2f} | "
        + ", ".join(f"{t:.2f}" for t in server)
        + " |",
        f"| local SQLite | {statistics.median(local):.2f} | "
        + ", ".join(f"{t:.2f}" for t in local)
        + " |",
        "",
        f"Ratio server / local: **{ratio:.2f}x** (floor {FLOOR}x): {verdict}",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ratio <= FLOOR else 1


if __name__ == "__main__":
    sys.exit(main())
