"""Scale-out capacity (issue 8 point 3): ``POST /api/v1/cds/evaluate`` throughput at saturation
with one API process against two, on PostgreSQL (and Redis for the rate limits when one
answers), reported as the ratio two/one against the 1.6 target.

Saturation is measured closed-loop: a fixed number of keep-alive connections per process, each
sending its next request as soon as the previous one is answered, for a fixed time; throughput is
successful answers per second. (The open-loop generator of the latency figures answers a
different question, "which rate is held", and under overload times requests out instead of
counting them.) One- and two-process runs alternate, so drift on the shared machine hits both.
The correctness of the same topology (shared limits, sessions, outbox) is proven by
tests/integration/platform/test_scale_out.py.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil
import redis

from bench.cases import example_request_bodies
from bench.databases import Database, add_clinician, fresh_database
from bench.loadgen import _Connection, build_request  # the generator's own HTTP/1.1 client
from bench.options import Options
from bench.results import Figure, Section, Target
from bench.server import HOST, Server, check_bodies

PATH = "/api/v1/cds/evaluate"
RATIO_TARGET = Target(">=", 1.6, "issue 8")
CONNECTIONS_PER_PROCESS = 16
WARMUP_SECONDS = 3.0
RUN_SECONDS = 10.0
REDIS_URL = os.environ.get("CLINICOS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


@dataclass
class Saturation:
    processes: int
    ok: int
    errors: int
    seconds: float
    server_cpu_seconds: list[float]  # per API process
    postgres_cpu_seconds: float  # every PostgreSQL backend and helper process together
    generator_cpu_seconds: float  # this process (the load generator)
    machine_busy: float  # fraction of all cores busy during the run (0..1), steal included
    machine_steal: float  # fraction of all cores taken by the hypervisor for other guests

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "processes": self.processes,
            "throughput": round(self.throughput, 1),
            "ok": self.ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "server_cpu_cores": [round(c / self.seconds, 2) for c in self.server_cpu_seconds],
            "postgres_cpu_cores": round(self.postgres_cpu_seconds / self.seconds, 2),
            "generator_cpu_cores": round(self.generator_cpu_seconds / self.seconds, 2),
            "machine_busy": round(self.machine_busy, 3),
            "machine_steal": round(self.machine_steal, 3),
        }


async def _closed_loop(
    targets: Sequence[tuple[int, Sequence[bytes]]], connections: int, duration: float
) -> tuple[int, int, float]:
    """``connections`` clients per (port, payloads), each send-wait-send until ``duration`` is
    over; (successes, failures, seconds from the start to the last answer)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + duration
    counts = {"ok": 0, "errors": 0}

    async def client(port: int, payloads: Sequence[bytes], offset: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        conn = _Connection(reader, writer)
        sent = offset
        try:
            while loop.time() < deadline:
                status, keep = await conn.roundtrip(payloads[sent % len(payloads)])
                sent += 1
                counts["ok" if 200 <= status < 300 else "errors"] += 1
                if not keep:
                    conn.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
                    conn = _Connection(reader, writer)
        finally:
            conn.close()

    await asyncio.gather(
        *(
            client(port, payloads, index)
            for port, payloads in targets
            for index in range(connections)
        )
    )
    return counts["ok"], counts["errors"], loop.time() - start


def _postgres_cpu() -> dict[int, float]:
    """CPU used so far by each process named ``postgres`` that we may read, by pid."""
    used: dict[int, float] = {}
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "postgres":
            continue
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        used[proc.pid] = times.user + times.system
    return used


def _postgres_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU PostgreSQL used between two samples (a backend that started in between counts from
    zero; one that ended is lost, so this is a lower bound)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def saturate(
    servers: Sequence[Server], payloads: dict[int, list[bytes]], duration: float
) -> Saturation:
    for server in servers:
        server.wait_idle()
    cpu0 = [s.cpu_seconds() for s in servers]
    pg0, gen0 = _postgres_cpu(), time.process_time()
    machine0 = psutil.cpu_times()
    ok, errors, seconds = asyncio.run(
        _closed_loop(
            [(s.port, payloads[s.port]) for s in servers], CONNECTIONS_PER_PROCESS, duration
        )
    )
    machine1 = psutil.cpu_times()
    pg1, gen1 = _postgres_cpu(), time.process_time()
    idle = (machine1.idle + machine1.iowait) - (machine0.idle + machine0.iowait)
    total = sum(machine1) - sum(machine0)
    return Saturation(
        processes=len(servers),
        ok=ok,
        errors=errors,
        seconds=seconds,
        server_cpu_seconds=[s.cpu_seconds() - c for s, c in zip(servers, cpu0, strict=True)],
        postgres_cpu_seconds=_postgres_cpu_delta(pg0, pg1),
        generator_cpu_seconds=gen1 - gen0,
        machine_busy=1 - idle / total if total else 0.0,
        machine_steal=(getattr(machine1, "steal", 0.0) - getattr(machine0, "steal", 0.0)) / total
        if total
        else 0.0,
    )


@dataclass(frozen=True)
class _SharedLimits(Database):
    """The benchmark database, with every process's rate limits in Redis when one answers."""

    redis_url: str | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env(**extra)
        if self.redis_url is not None:
            env["CLINICOS_REDIS_URL"] = self.redis_url
        return env


def _redis_available() -> bool:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def run(options: Options) -> Section:
    section = Section(
        "scale_out", "Scale-out: CDS evaluate at saturation, one API process against two"
    )
    if "postgresql" not in options.engines:
        section.notes.append("Not measured: needs PostgreSQL (`--engines` without postgresql).")
        return section
    with_redis = _redis_available()
    with fresh_database("postgresql", options, "scale-out") as fresh:
        email, password = add_clinician(fresh)
        db = _SharedLimits(
            fresh.engine, fresh.url, fresh.var_dir, REDIS_URL if with_redis else None
        )
        Server(db, log_name="first-start.log").__enter__().stop()  # creates the signing key
        with Server(db, log_name="api-a.log") as a, Server(db, log_name="api-b.log") as b:
            token = a.login(email, password)  # one session, valid on both processes
            check_bodies(b, token, PATH, example_request_bodies())
            payloads = {
                s.port: [
                    build_request("POST", HOST, s.port, PATH, body=body, token=token)
                    for body in example_request_bodies()
                ]
                for s in (a, b)
            }
            saturate([a, b], payloads, options.seconds(WARMUP_SECONDS))
            one: list[Saturation] = []
            two: list[Saturation] = []
            for _ in range(options.runs(3)):
                time.sleep(1.0)
                one.append(saturate([a], payloads, options.seconds(RUN_SECONDS)))
                time.sleep(1.0)
                two.append(saturate([a, b], payloads, options.seconds(RUN_SECONDS)))
    ratios = [
        round(t.throughput / o.throughput, 3) if o.throughput else 0.0
        for o, t in zip(one, two, strict=True)
    ]
    details = {
        "one_process": [s.summary() for s in one],
        "two_processes": [s.summary() for s in two],
        "connections_per_process": CONNECTIONS_PER_PROCESS,
        "redis": with_redis,
        "cpu_count": psutil.cpu_count(),
    }
    section.figures += [
        Figure(
            "scale_out.one_process.postgresql",
            "CDS evaluate at saturation, 1 API process",
            "req/s",
            [round(s.throughput, 1) for s in one],
            engine="postgresql",
            details=details,
        ),
        Figure(
            "scale_out.two_processes.postgresql",
            "CDS evaluate at saturation, 2 API processes",
            "req/s",
            [round(s.throughput, 1) for s in two],
            engine="postgresql",
        ),
        Figure(
            "scale_out.ratio.postgresql",
            "throughput of 2 processes ÷ 1 process",
            "ratio",
            ratios,
            engine="postgresql",
            target=RATIO_TARGET,
        ),
        Figure(
            "scale_out.errors.postgresql",
            "failed requests in all runs",
            "count",
            [float(sum(s.errors for s in one + two))],
            engine="postgresql",
            runs_note="all runs",
        ),
    ]

    def median_cores(runs: list[Saturation], of: str) -> float:
        values = {
            "api": [sum(r.server_cpu_seconds) / r.seconds for r in runs],
            "steal": [r.machine_steal * cores for r in runs],
            "busy": [r.machine_busy * cores for r in runs],
            "others": [
                r.machine_busy * cores
                - (sum(r.server_cpu_seconds) + r.postgres_cpu_seconds + r.generator_cpu_seconds)
                / r.seconds
                for r in runs
            ],
        }[of]
        return statistics.median(values)

    cores = psutil.cpu_count() or 0
    section.notes += [
        "Two real `clinicos serve --no-worker` processes on one fresh PostgreSQL database (app "
        "role, row-level security), "
        + ("rate limits in Redis" if with_redis else "in-memory rate limits (no Redis answered)")
        + ", one clinician session signed in on the first process and used on both. Each "
        "request evaluates one of the 15 published cases inline and persists its evaluation, "
        "governance event, audit entry and outbox message in one transaction.",
        f"Closed loop: {CONNECTIONS_PER_PROCESS} keep-alive connections per process, each "
        "sending its next request when the last is answered; throughput = successful answers "
        f"per second. {WARMUP_SECONDS:.0f} s warm-up on both, then {RUN_SECONDS:.0f} s runs, "
        "one process and two alternating; the ratio is taken per pair of runs.",
        f"Where the {cores} cores went (medians, in cores): the API processes used "
        f"{median_cores(one, 'api'):.2f} with one process and {median_cores(two, 'api'):.2f} "
        f"with two; the whole machine was busy {median_cores(one, 'busy'):.2f} and "
        f"{median_cores(two, 'busy'):.2f}, of which the hypervisor stole "
        f"{median_cores(one, 'steal'):.2f} and {median_cores(two, 'steal'):.2f} for other "
        "guests, and processes other than the API, PostgreSQL and the load generator took "
        f"{median_cores(one, 'others'):.2f} and {median_cores(two, 'others'):.2f} (per-run "
        "figures in the JSON details). The CDS "
        "endpoint is CPU-bound in the API process: one process saturates one core, so a second "
        "adds only the CPU the machine has left. Every evaluation also appends to its clinic's "
        "audit chain, whose head row is locked until commit, so one clinic's evaluations "
        "commit one at a time across processes; this benchmark uses one clinic. Both limits "
        "are in the figure; see docs/deployment.md#capacity.",
    ]
    return section
