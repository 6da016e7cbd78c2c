"""Real servers on 127.0.0.1 for the tests that need them: PostgreSQL (a throw-away cluster
made with initdb), an S3 API (moto's server mode) and an MLflow tracking server over both.
Each skips the test with the reason when its binary is absent; `.ci/run` installs them."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: Debian keeps them off PATH, in /usr/lib/postgresql/N/bin."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name.split(".")[0])
    )
    if candidates and (candidates[-1] / "pg_ctl").exists():
        return candidates[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL server on 127.0.0.1 (trust auth); skips when it cannot start."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; .ci/run installs them")
    home = Path(tempfile.mkdtemp(prefix="reprotrain-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(home)
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        os.chown(home, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = home / "data", free_port()

    def pg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=120)

    init = pg(
        str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"
    )
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = init.returncode == 0 and pg(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(home / "log"),
        "-w",
        "-o",
        options,
        "start",
    )
    if not start or start.returncode != 0:
        reason = (init.stderr or (start.stderr if start else "") or "no output").strip()
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start: {reason.splitlines()[-1]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


def create_database(server: str, name: str) -> str:
    import psycopg2

    connection = psycopg2.connect(f"{server}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    return f"{server}/{name}"


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or never does."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited {process.returncode}:\n{log.read_text()}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=5) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout_s} s:\n{log.read_text()}")


@contextlib.contextmanager
def serving(command: list[str], health: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """A server process, its output in `log`, stopped (SIGTERM, then SIGKILL) afterwards."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        wait_for_http(health, process, log)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@contextlib.contextmanager
def s3_server(log: Path) -> Iterator[str]:
    """moto's S3 API on 127.0.0.1 (a `moto_server` process); yields its endpoint URL."""
    binary = Path(sys.executable).parent / "moto_server"
    if not binary.exists():
        pytest.skip(f"{binary} not found: moto[server] from requirements.lock is not installed")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [str(binary), "-H", "127.0.0.1", "-p", str(port)]
    with serving(command, f"{endpoint}/moto-api/", log, dict(os.environ)):
        yield endpoint


def create_bucket(endpoint: str, name: str, keys: dict[str, str]) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys)
    client.create_bucket(Bucket=name)


def bucket_keys(endpoint: str, name: str, keys: dict[str, str]) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


TRACKING_SERVER = Path(__file__).resolve().parent.parent / "scripts" / "tracking_server.sh"


@contextlib.contextmanager
def tracking_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """`scripts/tracking_server.sh` on a free port of 127.0.0.1 with `env` (the store, the
    bucket and its keys); yields the URL clients set as MLFLOW_TRACKING_URI."""
    port = free_port()
    command = ["bash", str(TRACKING_SERVER), "--workers", "1"]
    with serving(
        command, f"http://127.0.0.1:{port}/health", log, {**env, "MLFLOW_PORT": str(port)}
    ):
        yield f"http://127.0.0.1:{port}"


def create_owned_database(server: str, name: str, password: str) -> str:
    """A login role `name` with `password` owning a database `name`; returns its URL, the
    password in it (trust auth accepts any: it stands for a team's real one)."""
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(f"{server}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        role = sql.Identifier(name)
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(role), [password])
        cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
    connection.close()
    return f"postgresql://{name}:{password}@{server.rsplit('@', 1)[1]}/{name}"
