"""The load generator's weighted mix: labelled operations of one or more requests, latency and
errors per kind, the timeline, and stale keep-alive connections left unused."""

from __future__ import annotations

import asyncio
from collections import Counter

from bench.loadgen import Operation, build_request, open_loop, weighted_mix


async def _serve(statuses: dict[bytes, int]) -> tuple[asyncio.Server, int, list[bytes]]:
    """A keep-alive HTTP/1.1 server answering each path with its status (200 by default)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1]
                seen.append(path)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                status = statuses.get(path, 200)
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\n".encode() + b"{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, seen


def test_weighted_mix_follows_the_weights() -> None:
    pools = [
        ("a", 0.5, [Operation("a", (b"1",))]),
        ("b", 0.3, [Operation("b", (b"2",))]),
        ("c", 0.2, [Operation("c", (b"3",))]),
    ]
    mix = weighted_mix(pools, 10_000, seed=3)
    counts = Counter(op.kind for op in mix)
    assert abs(counts["a"] / 10_000 - 0.5) < 0.02
    assert abs(counts["c"] / 10_000 - 0.2) < 0.02
    assert mix == weighted_mix(pools, 10_000, seed=3)  # seeded


def test_open_loop_reports_per_kind_and_sends_every_request_of_an_operation() -> None:
    async def scenario() -> None:
        server, port, seen = await _serve({b"/bad": 500})

        def req(path: str) -> bytes:
            return build_request("GET", "127.0.0.1", port, path)

        ops = [
            Operation("chart", (req("/p"), req("/p/obs"))),
            Operation("search", (req("/s"),)),
            Operation("broken", (req("/bad"), req("/never"))),
        ]
        try:
            result = await open_loop("127.0.0.1", port, ops, rate=60, duration=1.0, timeline=True)
        finally:
            server.close()
        assert result.sent == 60
        assert result.ok == 40
        assert result.errors == 20
        assert result.error_kinds == {"HTTP 500": 20}
        assert result.errors_by_kind == {"broken": 20}
        assert len(result.by_kind_ms["chart"]) == 20
        assert len(result.by_kind_ms["search"]) == 20
        assert b"/never" not in seen  # an operation stops at its first failed request
        assert seen.count(b"/p/obs") == 20
        summary = result.summary()
        assert summary["by_kind"]["broken"]["errors"] == 20  # type: ignore[index]
        assert len(result.timeline) == 60
        assert all(0 <= t < 1.0 for t, _, _ in result.timeline)
        assert sum(1 for _, kind, ms in result.timeline if ms is None and kind == "broken") == 20

    asyncio.run(scenario())


def test_plain_payloads_still_work_without_kinds() -> None:
    async def scenario() -> None:
        server, port, _ = await _serve({})
        try:
            result = await open_loop(
                "127.0.0.1",
                port,
                [build_request("GET", "127.0.0.1", port, "/health")],
                rate=50,
                duration=0.5,
            )
        finally:
            server.close()
        assert result.ok == 25
        assert result.by_kind_ms == {}
        assert "by_kind" not in result.summary()

    asyncio.run(scenario())
