"""Reusable HTTP load procedures over a running :class:`~bench.server.Server`: constant-rate runs
and step-up searches for the highest rate held. The CDS figure sends one kind of request; the
mixed clinical workload (bench/mixed.py, bench/soak.py) passes a weighted list of
:class:`~bench.loadgen.Operation`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.loadgen import LoadResult, Payload, open_loop
from bench.server import HOST, Server


@dataclass
class Measured:
    result: LoadResult
    server_cpu_ms_per_request: float


def constant_rate(
    server: Server,
    payloads: Sequence[Payload],
    *,
    rate: float,
    duration: float,
    timeline: bool = False,
) -> Measured:
    """One open-loop run, started only once the server has drained any earlier backlog."""
    server.wait_idle()
    cpu0 = server.cpu_seconds()
    result = asyncio.run(
        open_loop(HOST, server.port, payloads, rate=rate, duration=duration, timeline=timeline)
    )
    cpu = server.cpu_seconds() - cpu0
    return Measured(result, round(1000 * cpu / max(result.sent, 1), 3))


def held(result: LoadResult, p95_limit_ms: float) -> bool:
    """A rate is held when every request succeeded, p95 is under the limit and the server kept
    up (answers per second within 2% of the offered rate)."""
    return (
        result.errors == 0
        and result.p(95) < p95_limit_ms
        and result.achieved_rate >= 0.98 * result.offered_rate
    )


def step_up(
    server: Server,
    payloads: Sequence[Payload],
    *,
    rates: Sequence[float],
    duration: float,
    p95_limit_ms: float,
    lower: Sequence[float] = (),
    pause: float = 2.0,
) -> tuple[float, list[Measured]]:
    """Run each rate in turn until one is not held; (highest rate held or 0, every step).

    When even the first rate is not held, ``lower`` rates (descending) are tried until one is,
    so the figure says what the server does hold instead of just 0."""
    best = 0.0
    steps: list[Measured] = []
    for rate in rates:
        time.sleep(pause)  # let the server settle before the next step
        measured = constant_rate(server, payloads, rate=rate, duration=duration)
        steps.append(measured)
        if not held(measured.result, p95_limit_ms):
            break
        best = rate
    if best == 0.0:
        for rate in lower:
            time.sleep(pause)
            measured = constant_rate(server, payloads, rate=rate, duration=duration)
            steps.append(measured)
            if held(measured.result, p95_limit_ms):
                best = rate
                break
    return best, steps


def step_until(
    server: Server,
    payloads: Sequence[Payload],
    *,
    rates: Sequence[float],
    duration: float,
    p95_limit_ms: float,
    stop_p95_ms: float,
    lower: Sequence[float] = (),
    pause: float = 2.0,
    on_step: Callable[[Measured], None] | None = None,
) -> tuple[float, list[Measured]]:
    """Run each rate in turn until p95 exceeds ``stop_p95_ms`` (or requests fail); (highest
    rate held with p95 under ``p95_limit_ms`` — see :func:`held` — or 0, every step).

    Unlike :func:`step_up` it goes on past the first rate not held, up to the stop limit, so the
    report shows how latency degrades; the figure is still the highest rate held. When no rate
    is held, ``lower`` rates (descending) are tried until one is."""
    best = 0.0
    steps: list[Measured] = []
    for rate in rates:
        time.sleep(pause)
        measured = constant_rate(server, payloads, rate=rate, duration=duration)
        steps.append(measured)
        if on_step is not None:
            on_step(measured)
        if held(measured.result, p95_limit_ms):
            best = max(best, rate)
        if measured.result.p(95) > stop_p95_ms or measured.result.errors:
            break
    if best == 0.0:
        for rate in lower:
            time.sleep(pause)
            measured = constant_rate(server, payloads, rate=rate, duration=duration)
            steps.append(measured)
            if on_step is not None:
                on_step(measured)
            if held(measured.result, p95_limit_ms):
                best = rate
                break
    return best, steps
