"""An open-loop HTTP/1.1 load generator (asyncio, keep-alive connections): requests leave on a
fixed schedule whether or not earlier ones have answered, and each latency is measured from its
*scheduled* send time, so a stalled server shows up as latency instead of as fewer requests
(no coordinated omission). See docs/adr/0016-benchmark-load-generator.md for why not locust.

Deliberately small: pre-built request bytes, a hand-rolled response reader (status line,
headers, Content-Length body), no per-request allocation beyond the result.

A run takes plain request bytes (one kind of request, as the CDS figure sends) or a weighted mix
of labelled operations, :class:`Operation` (``kind``, one or more requests sent one after another
on one connection — "open a chart" is a patient read then its observations); latency is then
reported per kind as well as overall (:func:`weighted_mix` builds such a list)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.stats import percentile

CONNECT_TIMEOUT = 5.0
IDLE_REUSE_SECONDS = 3.0  # below uvicorn's 5 s keep-alive timeout


def build_request(
    method: str, host: str, port: int, path: str, *, body: bytes = b"", token: str | None = None
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Accept: application/json",
        "Connection: keep-alive",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body or method in {"POST", "PUT", "PATCH"}:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


@dataclass(frozen=True)
class Operation:
    """One labelled unit of a mixed workload: ``requests`` (pre-built bytes) go one after another
    on one keep-alive connection; it succeeds when every answer is 2xx, and its latency runs
    from its scheduled send time to the last answer."""

    kind: str
    requests: tuple[bytes, ...]


Payload = bytes | Operation


def weighted_mix(
    pools: Sequence[tuple[str, float, Sequence[Operation]]], count: int, *, seed: int = 1
) -> list[Operation]:
    """``count`` operations drawn with a seeded RNG: a kind by its weight, then one operation of
    that kind's pool at random. Cycling through the list reproduces the weights."""
    rng = random.Random(seed)
    kinds = [kind for kind, _, _ in pools]
    weights = [weight for _, weight, _ in pools]
    by_kind = {kind: pool for kind, _, pool in pools}
    empty = [kind for kind, pool in by_kind.items() if not pool]
    if empty:
        raise ValueError(f"no operations for {', '.join(empty)}")
    return [rng.choice(by_kind[rng.choices(kinds, weights)[0]]) for _ in range(count)]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    async def roundtrip(self, payload: bytes) -> tuple[int, bool]:
        """Send one request, read the whole response; (status, server keeps the connection)."""
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        keep = True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported by the load generator")
        if length:
            await self.reader.readexactly(length)
        return status, keep

    def close(self) -> None:
        self.writer.close()


@dataclass
class LoadResult:
    """One open-loop run. Latencies in ms from the scheduled send time, successes only."""

    offered_rate: float
    duration: float
    sent: int
    ok: int
    errors: int
    error_kinds: dict[str, int]
    latencies_ms: list[float] = field(repr=False)
    send_lag_ms: list[float] = field(repr=False)
    wall_seconds: float
    generator_cpu_seconds: float
    # A mixed run: latencies (successes) and error counts per kind of operation.
    by_kind_ms: dict[str, list[float]] = field(default_factory=dict, repr=False)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    # Every operation as (scheduled second from the start, kind, latency ms or None when it
    # failed), when ``timeline=True``: lets a long run be cut into minutes (the soak).
    timeline: list[tuple[float, str, float | None]] = field(default_factory=list, repr=False)

    @property
    def achieved_rate(self) -> float:
        """Successful responses per second over the time from the first send to the last answer."""
        return self.ok / self.wall_seconds if self.wall_seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q) if self.latencies_ms else float("inf")

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        out: dict[str, float | int | dict[str, int]] = {
            "offered_rate": self.offered_rate,
            "achieved_rate": round(self.achieved_rate, 1),
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "p50_ms": round(self.p(50), 2),
            "p95_ms": round(self.p(95), 2),
            "p99_ms": round(self.p(99), 2),
            "max_ms": round(max(self.latencies_ms), 2) if self.latencies_ms else None,  # type: ignore[dict-item]
            "send_lag_p99_ms": round(percentile(self.send_lag_ms, 99), 2)
            if self.send_lag_ms
            else 0.0,
            "generator_cpu_us_per_request": round(
                1e6 * self.generator_cpu_seconds / max(self.sent, 1), 1
            ),
        }
        if self.by_kind_ms or self.errors_by_kind:
            out["by_kind"] = self.kind_summary()  # type: ignore[assignment]
        return out

    def kind_summary(self) -> dict[str, dict[str, float | int | None]]:
        """Per kind of operation: successes, errors and latency percentiles (ms)."""
        out: dict[str, dict[str, float | int | None]] = {}
        for kind in sorted(set(self.by_kind_ms) | set(self.errors_by_kind)):
            values = self.by_kind_ms.get(kind, [])

            def p(q: float, values: list[float] = values) -> float | None:
                return round(percentile(values, q), 2) if values else None

            out[kind] = {
                "ok": len(values),
                "errors": self.errors_by_kind.get(kind, 0),
                "p50_ms": p(50),
                "p95_ms": p(95),
                "p99_ms": p(99),
            }
        return out


async def open_loop(
    host: str,
    port: int,
    payloads: Sequence[Payload],
    *,
    rate: float,
    duration: float,
    timeout: float = 10.0,  # noqa: ASYNC109 - per request, not for the whole call
    max_connections: int = 512,
    timeline: bool = False,
) -> LoadResult:
    """Send ``rate`` requests per second for ``duration`` seconds, cycling through ``payloads``
    (request bytes, or :class:`Operation` for a labelled mix, reported per kind as well).

    A request waits for a free keep-alive connection (opening one while fewer than
    ``max_connections`` exist); that wait counts in its latency, as it would for a client.
    An operation of several requests holds its connection until its last answer.
    """
    loop = asyncio.get_running_loop()
    idle: list[_Connection] = []
    waiters: deque[asyncio.Future[_Connection | None]] = deque()
    opened = 0
    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}
    by_kind: dict[str, list[float]] = {}
    kind_errors: dict[str, int] = {}
    events: list[tuple[float, str, float | None]] = []

    async def acquire() -> _Connection:
        # One event loop thread: plain lists and futures are enough (cheaper than a Condition).
        nonlocal opened
        while True:
            if idle:
                conn = idle.pop()
                # The server closes a keep-alive connection idle for 5 s (uvicorn's default):
                # never reuse one it closed or is about to close, as an HTTP client would not.
                if conn.reader.at_eof() or loop.time() - conn.idle_since > IDLE_REUSE_SECONDS:
                    conn.close()
                    opened -= 1
                    continue
                return conn
            if opened < max_connections:
                opened += 1
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        reader, writer = await asyncio.open_connection(host, port)
                except BaseException:
                    release(None)
                    raise
                return _Connection(reader, writer)
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            waiters.append(waiter)
            handed = await waiter
            if handed is not None:
                return handed

    def release(conn: _Connection | None) -> None:
        """Hand a kept connection to the next waiter (or park it); None frees a slot."""
        nonlocal opened
        if conn is None:
            opened -= 1
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            conn.idle_since = loop.time()
            idle.append(conn)

    def error(kind: str, label: str | None, scheduled: float) -> None:
        errors[kind] = errors.get(kind, 0) + 1
        if label is not None:
            kind_errors[label] = kind_errors.get(label, 0) + 1
        if timeline:
            events.append((scheduled - start, label or "", None))

    async def one(payload: Payload, scheduled: float) -> None:
        label, requests = (
            (payload.kind, payload.requests) if isinstance(payload, Operation) else (None, None)
        )
        conn: _Connection | None = None
        keep = False
        try:
            async with asyncio.timeout(timeout):
                conn = await acquire()
                lags.append((loop.time() - scheduled) * 1000)
                if requests is None:
                    status, keep = await conn.roundtrip(payload)  # type: ignore[arg-type]
                else:
                    for index, request in enumerate(requests):
                        status, keep = await conn.roundtrip(request)
                        if not 200 <= status < 300:
                            break
                        if not keep and index < len(requests) - 1:
                            raise RuntimeError("the server closed the connection mid-operation")
        except TimeoutError:
            error("timeout", label, scheduled)
        except (OSError, asyncio.IncompleteReadError, ValueError, RuntimeError) as exc:
            error(type(exc).__name__, label, scheduled)
        else:
            done = loop.time()
            if 200 <= status < 300:
                latency = (done - scheduled) * 1000
                latencies.append(latency)
                if label is not None:
                    by_kind.setdefault(label, []).append(latency)
                if timeline:
                    events.append((scheduled - start, label or "", latency))
            else:
                error(f"HTTP {status}", label, scheduled)
            if keep:
                release(conn)
                return
        if conn is not None:
            conn.close()
            release(None)

    total = int(rate * duration)
    interval = 1.0 / rate
    tasks: set[asyncio.Task[None]] = set()
    cpu_start = time.process_time()
    start = loop.time() + 0.01
    sent = 0
    while sent < total:
        now = loop.time()
        due = start + sent * interval
        if due > now:
            await asyncio.sleep(due - now)
            continue
        while sent < total and start + sent * interval <= now:
            task = loop.create_task(one(payloads[sent % len(payloads)], start + sent * interval))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
    if tasks:
        await asyncio.wait(set(tasks), timeout=timeout + CONNECT_TIMEOUT + 5)
    wall = loop.time() - start
    cpu = time.process_time() - cpu_start
    for conn in idle:
        conn.close()
    unfinished = sent - len(latencies) - sum(errors.values())
    if unfinished:
        errors["unfinished"] = unfinished
    return LoadResult(
        offered_rate=rate,
        duration=duration,
        sent=sent,
        ok=len(latencies),
        errors=sum(errors.values()),
        error_kinds=errors,
        latencies_ms=latencies,
        send_lag_ms=lags,
        wall_seconds=wall,
        generator_cpu_seconds=cpu,
        by_kind_ms=by_kind,
        errors_by_kind=kind_errors,
        timeline=sorted(events),
    )
