"""An open-loop HTTP/1.1 load generator (asyncio, keep-alive connections): requests leave on a
fixed schedule whether or not earlier ones have answered, and each latency is measured from its
*scheduled* send time, so a stalled server shows up as latency instead of as fewer requests
(no coordinated omission). See docs/adr/0016-benchmark-load-generator.md for why not locust.

Deliberately small: pre-built request bytes, a hand-rolled response reader (status line,
headers, Content-Length body), no per-request allocation beyond the result."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.stats import percentile

CONNECT_TIMEOUT = 5.0


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


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

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

    @property
    def achieved_rate(self) -> float:
        """Successful responses per second over the time from the first send to the last answer."""
        return self.ok / self.wall_seconds if self.wall_seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q) if self.latencies_ms else float("inf")

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
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


async def open_loop(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    *,
    rate: float,
    duration: float,
    timeout: float = 10.0,  # noqa: ASYNC109 - per request, not for the whole call
    max_connections: int = 512,
) -> LoadResult:
    """Send ``rate`` requests per second for ``duration`` seconds, cycling through ``payloads``.

    A request waits for a free keep-alive connection (opening one while fewer than
    ``max_connections`` exist); that wait counts in its latency, as it would for a client.
    """
    loop = asyncio.get_running_loop()
    idle: list[_Connection] = []
    waiters: deque[asyncio.Future[_Connection | None]] = deque()
    opened = 0
    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}

    async def acquire() -> _Connection:
        # One event loop thread: plain lists and futures are enough (cheaper than a Condition).
        nonlocal opened
        while True:
            if idle:
                return idle.pop()
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
            idle.append(conn)

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def one(payload: bytes, scheduled: float) -> None:
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                conn = await acquire()
                lags.append((loop.time() - scheduled) * 1000)
                status, keep = await conn.roundtrip(payload)
        except TimeoutError:
            error("timeout")
        except (OSError, asyncio.IncompleteReadError, ValueError, RuntimeError) as exc:
            error(type(exc).__name__)
        else:
            done = loop.time()
            if 200 <= status < 300:
                latencies.append((done - scheduled) * 1000)
            else:
                error(f"HTTP {status}")
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
    )
