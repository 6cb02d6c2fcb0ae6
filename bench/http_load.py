"""Reusable HTTP load procedures over a running :class:`~bench.server.Server`: constant-rate runs
and a step-up search for the highest rate held. The CDS figure uses them today; the mixed
clinical workload (issue 8) will pass its own weighted request list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.loadgen import LoadResult, open_loop
from bench.server import HOST, Server


@dataclass
class Measured:
    result: LoadResult
    server_cpu_ms_per_request: float


def constant_rate(
    server: Server, payloads: Sequence[bytes], *, rate: float, duration: float
) -> Measured:
    """One open-loop run, started only once the server has drained any earlier backlog."""
    server.wait_idle()
    cpu0 = server.cpu_seconds()
    result = asyncio.run(open_loop(HOST, server.port, payloads, rate=rate, duration=duration))
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
    payloads: Sequence[bytes],
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
