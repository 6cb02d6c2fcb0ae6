"""Describe the machine and the conditions a run happened under (for the report's header)."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.options import REPOSITORY


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what the platform module reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def _git(*args: str) -> str:
    try:
        out = subprocess.run(  # noqa: S603 - fixed arguments
            ["git", *args],  # noqa: S607
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


_PG_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "shared_buffers",
    "max_connections",
)


def postgres_settings(admin_url: str) -> dict[str, str] | None:
    """The server's version and the settings that decide durable-write speed (None if down)."""
    try:
        with psycopg.connect(admin_url, connect_timeout=3) as conn:
            return {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in _PG_SETTINGS
            }
    except psycopg.Error:
        return None


def describe_machine(postgres_admin_url: str) -> dict[str, Any]:
    dirty = _git("status", "--porcelain", "--untracked-files=no").splitlines()
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": _os_name(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_settings(postgres_admin_url),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
        "git_modified_files": len(dirty),
    }


def _other_test_processes() -> int:
    """Processes running pytest that this run did not start (another engineer's test run)."""
    mine = os.getpid()
    count = 0
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if process.info["pid"] != mine and any("pytest" in part for part in cmdline):
            count += 1
    return count


def sample_load(seconds: float = 3.0) -> dict[str, Any]:
    """Load average, whole-machine CPU busy % over ``seconds``, and concurrent test processes."""
    busy = psutil.cpu_percent(interval=seconds)
    one, five, fifteen = os.getloadavg()
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)],
        "cpu_busy_percent": busy,
        "pytest_processes": _other_test_processes(),
        "monotonic": time.monotonic(),
    }


class LoadMonitor:
    """Samples the machine every few seconds in a thread while the suite runs, so the report can
    say whether something else (another engineer's tests) competed for the two cores."""

    def __init__(self, interval: float = 5.0) -> None:
        import threading

        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.samples: list[dict[str, Any]] = []

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            one, _, _ = os.getloadavg()
            self.samples.append({"loadavg1": round(one, 2), "pytest": _other_test_processes()})

    def __enter__(self) -> LoadMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"samples": 0}
        loads = [s["loadavg1"] for s in self.samples]
        busy = [s for s in self.samples if s["pytest"] > 0]
        return {
            "samples": len(self.samples),
            "loadavg1_max": max(loads),
            "loadavg1_mean": round(sum(loads) / len(loads), 2),
            "share_with_other_pytest": round(len(busy) / len(self.samples), 2),
            "pytest_processes_max": max(s["pytest"] for s in self.samples),
        }
