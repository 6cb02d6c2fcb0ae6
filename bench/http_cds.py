"""Figures 4 and 6: ``POST /api/v1/cds/evaluate`` (inline facts, governance event and audit entry
persisted) against a real server process at a constant arrival rate, the step-up search for the
highest rate held, the load generator's own ceiling, and the API process's memory and cold start.
"""

from __future__ import annotations

from bench.cases import example_request_bodies
from bench.databases import add_clinician, fresh_database
from bench.http_load import Measured, constant_rate, step_up
from bench.loadgen import build_request
from bench.options import Options
from bench.results import Figure, Section, Target
from bench.server import HOST, RssSampler, Server, check_bodies

PATH = "/api/v1/cds/evaluate"
RATE = 200.0
P95_LIMIT_MS = 50.0
P95_TARGET = Target("<", P95_LIMIT_MS, "issue 5")
STEP_TARGET = Target(">=", 1_000, "issue 8")
RSS_TARGET = Target("<", 250, "issue 8")
COLD_START_TARGET = Target("<", 3.0, "issue 8")
WARMUP_SECONDS = 5.0
RUN_SECONDS = 20.0
STEP_SECONDS = 10.0
STEP_RATES = [200.0 * n for n in range(1, 11)]  # 200 ... 2,000 req/s
LOWER_RATES = [150.0, 100.0, 75.0, 50.0, 25.0]  # when 200 is not held: what is?
HEALTH_RATES = [500.0, 1000.0, 1500.0, 2000.0, 3000.0, 4000.0]
HEALTH_LOWER = [400.0, 300.0, 200.0, 100.0]
COLD_STARTS = 5


def _payloads(server: Server, token: str) -> list[bytes]:
    return [
        build_request("POST", HOST, server.port, PATH, body=body, token=token)
        for body in example_request_bodies()
    ]


def _engine(
    engine: str, options: Options, http: Section, resources: Section, ceiling: bool
) -> None:
    with fresh_database(engine, options, "http") as db:
        email, password = add_clinician(db)
        Server(db, log_name="first-start.log").__enter__().stop()  # creates the signing key
        with Server(db) as server:
            rss_idle = server.rss_mb()
            token = server.login(email, password)
            check_bodies(server, token, PATH, example_request_bodies())
            payloads = _payloads(server, token)
            with RssSampler(server) as sampler:
                constant_rate(server, payloads, rate=RATE, duration=options.seconds(WARMUP_SECONDS))
                runs = [
                    constant_rate(
                        server, payloads, rate=RATE, duration=options.seconds(RUN_SECONDS)
                    )
                    for _ in range(options.runs(3))
                ]
                best, steps = step_up(
                    server,
                    payloads,
                    rates=STEP_RATES,
                    duration=options.seconds(STEP_SECONDS),
                    p95_limit_ms=P95_LIMIT_MS,
                    lower=LOWER_RATES,
                )
            rss_after = server.rss_mb()
            if ceiling:
                health = [build_request("GET", HOST, server.port, "/health")]
                ceiling_rate, ceiling_steps = step_up(
                    server,
                    health,
                    rates=HEALTH_RATES,
                    duration=options.seconds(5.0),
                    p95_limit_ms=P95_LIMIT_MS,
                    lower=HEALTH_LOWER,
                )
        starts = [Server(db, log_name="cold-start.log") for _ in range(options.runs(COLD_STARTS))]
        cold = []
        for start in starts:
            cold.append(round(start.start(), 3))
            start.stop()
    http.figures += _http_figures(engine, runs, best, steps)
    if ceiling:
        gen_cpu = [
            round(1e6 * s.result.generator_cpu_seconds / max(s.result.sent, 1), 1)
            for s in ceiling_steps
        ]
        http.figures.append(
            Figure(
                "loadgen.health_ceiling",
                "load generator + trivial endpoint: highest GET "
                "/health rate held (p95 < 50 ms, no errors)",
                "req/s",
                [ceiling_rate],
                engine=engine,
                runs_note="1 run, 5 s steps",
                details={
                    "steps": [s.result.summary() for s in ceiling_steps],
                    "server_cpu_ms_per_request": [
                        s.server_cpu_ms_per_request for s in ceiling_steps
                    ],
                },
            )
        )
        http.figures.append(
            Figure(
                "loadgen.cpu_per_request",
                "load generator CPU per request (GET /health steps)",
                "µs",
                gen_cpu,
                engine=engine,
            )
        )
    resources.figures += [
        Figure(
            f"resources.rss_idle.{engine}",
            "API RSS, idle after start",
            "MB",
            [round(rss_idle, 1)],
            engine=engine,
            target=RSS_TARGET,
            runs_note="1 run",
        ),
        Figure(
            f"resources.rss_peak.{engine}",
            "API RSS, peak under the CDS load runs",
            "MB",
            [round(sampler.peak_mb, 1)],
            engine=engine,
            target=RSS_TARGET,
            runs_note="1 run",
        ),
        Figure(
            f"resources.rss_after.{engine}",
            "API RSS, after the CDS load runs",
            "MB",
            [round(rss_after, 1)],
            engine=engine,
            target=RSS_TARGET,
            runs_note="1 run",
        ),
        Figure(
            f"resources.cold_start.{engine}",
            "cold start to /ready 200",
            "s",
            cold,
            engine=engine,
            target=COLD_START_TARGET,
        ),
    ]


def _http_figures(
    engine: str, runs: list[Measured], best: float, steps: list[Measured]
) -> list[Figure]:
    summaries = [m.result.summary() for m in runs]

    def pick(name: str) -> list[float]:
        return [float(s[name]) for s in summaries]  # type: ignore[arg-type]

    prefix = f"http_cds.{int(RATE)}"
    details = {"runs": summaries, "warmup_seconds": WARMUP_SECONDS}
    return [
        Figure(
            f"{prefix}.p95.{engine}",
            f"p95 at {RATE:.0f} req/s",
            "ms",
            pick("p95_ms"),
            engine=engine,
            target=P95_TARGET,
            details=details,
        ),
        Figure(
            f"{prefix}.p50.{engine}",
            f"p50 at {RATE:.0f} req/s",
            "ms",
            pick("p50_ms"),
            engine=engine,
        ),
        Figure(
            f"{prefix}.p99.{engine}",
            f"p99 at {RATE:.0f} req/s",
            "ms",
            pick("p99_ms"),
            engine=engine,
        ),
        Figure(
            f"{prefix}.achieved.{engine}",
            f"achieved rate at {RATE:.0f} req/s offered",
            "req/s",
            pick("achieved_rate"),
            engine=engine,
        ),
        Figure(
            f"{prefix}.errors.{engine}",
            f"errors at {RATE:.0f} req/s",
            "count",
            pick("errors"),
            engine=engine,
        ),
        Figure(
            f"{prefix}.server_cpu.{engine}",
            "server CPU per request",
            "ms",
            [m.server_cpu_ms_per_request for m in runs],
            engine=engine,
        ),
        Figure(
            f"http_cds.step_up.{engine}",
            "highest rate held (p95 < 50 ms, no errors)",
            "req/s",
            [best],
            engine=engine,
            target=STEP_TARGET,
            runs_note=f"1 run, {STEP_SECONDS:.0f} s steps",
            details={
                "steps": [m.result.summary() for m in steps],
                "server_cpu_ms_per_request": [m.server_cpu_ms_per_request for m in steps],
            },
        ),
    ]


def run(options: Options) -> list[Section]:
    http = Section("http_cds", "CDS evaluate over HTTP (governance event persisted)")
    resources = Section("resources", "API process resources")
    for index, engine in enumerate(options.engines):
        _engine(engine, options, http, resources, ceiling=index == 0)
    http.notes += [
        "A real `clinicos serve --no-worker` process (one uvicorn worker, development settings, "
        "default logging; rate limits raised beyond reach so the limiter stays in the path "
        "without answering 429) on a fresh migrated database; PostgreSQL as the non-owner app "
        "role under row-level security. The client is a clinician signed in through "
        "`POST /api/v1/auth/login`; each request evaluates one of the 15 published cases inline "
        "and persists its evaluation, governance event and audit entry in one transaction.",
        f"Open model: {RATE:.0f} requests/s leave on schedule whatever the server does; latency "
        "counts from the scheduled send, so queueing is not hidden (bench/loadgen.py, ADR 0016). "
        f"{WARMUP_SECONDS:.0f} s warm-up, then {RUN_SECONDS:.0f} s runs. A rate is *held* when "
        "p95 < 50 ms, no request failed and answers kept within 2% of the offered rate.",
        "Server, database and load generator share the machine's 2 cores: the generator's CPU "
        "(µs per request, below) and PostgreSQL's are taken from the server's budget.",
    ]
    resources.notes.append(
        "RSS of the API process (psutil) right after `/ready`, its peak while the CDS load ran "
        "(polled every 0.5 s) and after the runs. Cold start: from spawning `clinicos serve` to "
        f"the first 200 from `/ready` (polled every 10 ms), {COLD_STARTS} starts on a database "
        "whose signing key exists; median shown."
    )
    return [http, resources]
