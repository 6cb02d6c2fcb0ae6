"""Private PostgreSQL clusters and Redis servers that a fault test may stop, kill and restart.

The shared PostgreSQL (5432) and Redis (6379) serve every other test: a fault test never touches
them. It starts its own, on a free loopback port, with its files in a private temporary
directory, and always stops and removes them (context managers with ``finally``).

PostgreSQL refuses to run as root: when the tests run as root, ``initdb``/``pg_ctl`` run as the
``postgres`` system user (``runuser``), and the cluster directory (outside root's private pytest
tmp tree, which that user may not enter) is handed to it. Waiting is polling, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from tests.support.clinicos_processes import HOST, free_port

PG_BIN = Path(os.environ.get("CLINICOS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_SECONDS = 30.0
POLL_SECONDS = 0.05


class ServiceUnavailableForTest(RuntimeError):
    """The binaries or the system user a private service needs are missing."""


def _as_cluster_owner() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) to run PostgreSQL binaries as a non-root user."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServiceUnavailableForTest("running as root and no postgres system user") from exc
    return ["runuser", "-u", "postgres", "--"], owner.pw_uid, owner.pw_gid


@dataclass
class PrivateCluster:
    """One PostgreSQL cluster of our own: ``stop()``/``start()`` it freely."""

    root: Path
    port: int
    prefix: list[str]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{dbname}"

    def _pg_ctl(self, *args: str) -> None:
        command = [*self.prefix, str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=START_SECONDS + 10)

    def start(self) -> None:
        """Start and wait (``pg_ctl -w``) until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses={HOST}"
        self._pg_ctl(
            "start", "-w", "-t", str(int(START_SECONDS)), "-l", str(self.log_path), "-o", options
        )
        self._wait_until_accepting()

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(psycopg.OperationalError),
                psycopg.connect(self.url(), connect_timeout=2),
            ):
                return
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"private PostgreSQL did not accept connections:\n{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode>`` (fast: sessions terminated; immediate: a crash)."""
        self._pg_ctl("stop", "-w", "-m", mode)

    def running(self) -> bool:
        command = [*self.prefix, str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "status"]
        return subprocess.run(command, capture_output=True, timeout=10).returncode == 0

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivateCluster]:
    """A fresh cluster (trust authentication on loopback, superuser ``postgres``), started;
    always stopped (immediate) and its directory removed."""
    if not (PG_BIN / "initdb").exists():
        raise ServiceUnavailableForTest(f"no initdb in {PG_BIN}")
    prefix, uid, gid = _as_cluster_owner()
    root = Path(tempfile.mkdtemp(prefix="clinicos-pg-"))
    cluster = PrivateCluster(root, free_port(), prefix)
    try:
        if uid is not None and gid is not None:
            os.chown(root, uid, gid)
        subprocess.run(
            [
                *prefix,
                str(PG_BIN / "initdb"),
                "-D",
                str(cluster.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        with (cluster.data_dir / "postgresql.conf").open("a") as conf:
            # Small and quick: this cluster lives for one test.
            conf.write("fsync = off\nshared_buffers = 16MB\nmax_connections = 40\n")
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            if cluster.running():
                cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class PrivateRedis:
    """One ``redis-server`` of our own (no persistence), on a fixed port across restarts."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailableForTest("no redis-server on PATH")
        log = (self.root / "redis.log").open("ab")
        command = [binary, "--port", str(self.port), "--bind", HOST, "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.root)]
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + START_SECONDS
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited ({self.proc.returncode})")
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                time.sleep(POLL_SECONDS)
        finally:
            client.close()
        raise RuntimeError("private redis-server did not answer PING")

    def kill(self) -> None:
        """SIGKILL (an abrupt outage, not a shutdown) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def private_redis(root: Path) -> Iterator[PrivateRedis]:
    """A started ``redis-server`` on a free port with its files under ``root``; always killed."""
    server = PrivateRedis(root, free_port())
    try:
        server.start()
        yield server
    finally:
        server.kill()
