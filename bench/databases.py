"""Fresh databases for a benchmark (a SQLite file or a new PostgreSQL database, dropped after),
the ``clinicos`` CLI run against them, and the settings an in-process benchmark uses."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.options import REPOSITORY, Options
from clinicos.config import Environment, Settings

CLINICOS = REPOSITORY / ".venv" / "bin" / "clinicos"
APP_ROLE = "clinicos_app"
# The API's per-user budgets (30 writes/minute) would answer 429 to a load test; the limiter
# stays in the request path with budgets no benchmark reaches.
UNREACHABLE_RATE_LIMITS = {
    "CLINICOS_RATE_LIMIT__READ": "10000000/minute",
    "CLINICOS_RATE_LIMIT__WRITE": "10000000/minute",
}


@dataclass(frozen=True)
class Database:
    engine: str
    url: str
    var_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a ``clinicos`` process on this database (no inherited CLINICOS_*)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICOS_")}
        env |= {
            "CLINICOS_ENV": "development",
            "CLINICOS_DATABASE_URL": self.url,
            "CLINICOS_VAR_DIR": str(self.var_dir),
            **UNREACHABLE_RATE_LIMITS,
        }
        if self.engine == "postgresql":
            env["CLINICOS_DATABASE__APP_ROLE"] = APP_ROLE
        return env | extra

    def settings(self) -> Settings:
        """The same configuration as :meth:`env`, for in-process benchmarks."""
        overrides: dict[str, object] = {}
        if self.engine == "postgresql":
            overrides["database"] = {"app_role": APP_ROLE}
        return Settings(
            env=Environment.development,
            database_url=self.url,
            var_dir=self.var_dir,
            _env_file=None,
            **overrides,  # type: ignore[arg-type]
        )

    def clinicos(
        self, *args: str, stdin: str | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI on this database; raises with its output when it fails."""
        done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
            [str(CLINICOS), *args],
            env=self.env(),
            cwd=self.var_dir,  # no stray .env file is read
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"clinicos {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done


def _pg_url(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def fresh_database(engine: str, options: Options, label: str) -> Iterator[Database]:
    """A migrated, empty database of ``engine``; a PostgreSQL one is dropped afterwards."""
    var_dir = options.work_dir / f"{label}-{engine}-{uuid.uuid4().hex[:6]}"
    var_dir.mkdir(parents=True)
    if engine == "sqlite":
        db = Database(engine, f"sqlite+aiosqlite:///{var_dir / 'clinicos.db'}", var_dir)
        db.clinicos("db", "upgrade")
        yield db
        return
    name = f"clinicos_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(options.postgres_admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        db = Database(engine, _pg_url(options.postgres_admin_url, name), var_dir)
        db.clinicos("db", "upgrade")
        yield db
    finally:
        with psycopg.connect(
            options.postgres_admin_url, autocommit=True, connect_timeout=5
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def add_clinician(db: Database, *, slug: str = "bench") -> tuple[str, str]:
    """An organization with one clinician (who may also import records); (email, password)."""
    email = f"clinician@{slug}.example.com"
    password = f"bench-{uuid.uuid4().hex}-Clinic!"
    db.clinicos("org", "create", "--slug", slug, "--name", f"Bench {slug}")
    db.clinicos(
        "user",
        "create",
        "--org",
        slug,
        "--email",
        email,
        "--role",
        "clinician",
        "--password-stdin",
        stdin=password + "\n",
    )
    return email, password
