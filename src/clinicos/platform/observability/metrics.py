"""Prometheus metrics. Labels are route templates, statuses and technical names only: never PHI."""

from __future__ import annotations

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY: CollectorRegistry = DEFAULT_REGISTRY

HTTP_REQUESTS = Counter(
    "clinicos_http_requests_total",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "clinicos_http_request_duration_seconds",
    "HTTP request latency by method and route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_FLIGHT = Gauge("clinicos_http_requests_in_flight", "HTTP requests being served")
DB_POOL = Gauge(
    "clinicos_db_pool_connections",
    "Database pool connections by state (checked_out, idle, size)",
    ["state"],
)
OUTBOX_MESSAGES = Gauge(
    "clinicos_outbox_messages",
    "Outbox messages by status (pending = backlog, dead = dead-lettered)",
    ["status"],
)
OUTBOX_HANDLED = Counter(
    "clinicos_outbox_handler_runs_total",
    "Outbox handler runs by handler and outcome (ok, failed, skipped_duplicate)",
    ["handler", "outcome"],
)
OUTBOX_DEAD_LETTERED = Counter(
    "clinicos_outbox_dead_lettered_total", "Outbox messages moved to the dead-letter state"
)
JOB_RUNS = Counter(
    "clinicos_scheduled_job_runs_total", "Scheduled job runs by job and outcome", ["job", "outcome"]
)
PHI_DECRYPTION_FAILURES = Counter(
    "clinicos_phi_decryption_failures_total",
    "Protected fields that did not decrypt, by table and column (alert on any increase)",
    ["table", "column"],
)
CDS_ENGINE_FAILURES = Counter(
    "clinicos_cds_engine_failures_total",
    "Order checks whose engine raised instead of answering, by path (alert on any increase: "
    "the order was refused with a 500, never passed)",
    ["path"],
)
RATE_LIMIT_STORE_FAILURES = Counter(
    "clinicos_rate_limit_store_failures_total",
    "Rate-limit checks that could not reach the shared store (Redis), by category and policy: "
    "fail_closed requests were refused with a 503, fail_open ones served unlimited (alert on "
    "any increase)",
    ["category", "policy"],
)
SCHEMA_CURRENT = Gauge(
    "clinicos_db_schema_current",
    "0 while the database schema is known to be behind this release, else 1",
)


def render_latest() -> bytes:
    return generate_latest(REGISTRY)
