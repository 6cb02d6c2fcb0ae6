"""Prometheus metrics labelled by route template; OTLP traces reach a real collector endpoint."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from clinicos.bootstrap import Container, build_container
from clinicos.kernel.events import DomainEvent
from clinicos.main import create_app
from tests.conftest import make_settings
from tests.support.probe_routes import router as probe_router


@dataclass(frozen=True, kw_only=True)
class SomethingHappened(DomainEvent):
    event_type = "test.SomethingHappened"
    thing_id: str


@pytest.fixture
async def probe_client(container: Container) -> AsyncIterator[AsyncClient]:
    app = create_app(container.settings, container=container, run_worker=False)
    app.include_router(probe_router)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        yield http


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
        if not labels and line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_label_requests_by_route_template_not_raw_path(
    probe_client: AsyncClient,
) -> None:
    await probe_client.get("/_probe/items/patient-4711")
    text = (await probe_client.get("/metrics")).text
    assert "patient-4711" not in text
    count = sample(
        text,
        "clinicos_http_requests_total",
        method="GET",
        route="/_probe/items/{item_id}",
        status="200",
    )
    assert count is not None and count >= 1
    assert sample(
        text, "clinicos_http_request_duration_seconds_count", route="/_probe/items/{item_id}"
    )


async def test_metrics_report_pool_inflight_and_outbox_backlog(
    probe_client: AsyncClient, container: Container
) -> None:
    async with container.uow() as uow:
        for i in range(3):
            uow.record(SomethingHappened(thing_id=f"t{i}"))
        await uow.commit()
    text = (await probe_client.get("/metrics")).text
    assert sample(text, "clinicos_outbox_messages", status="pending") == 3.0
    assert sample(text, "clinicos_outbox_messages", status="dead") == 0.0
    assert sample(text, "clinicos_db_pool_connections", state="size") is not None
    assert sample(text, "clinicos_http_requests_in_flight") is not None
    assert sample(text, "clinicos_db_schema_current") == 1.0


class _Collector(BaseHTTPRequestHandler):
    spans: list[tuple[str, dict[str, object]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs: dict[str, object] = {a.key: a.value for a in span.attributes}
                    attrs["trace_id"] = span.trace_id.hex()
                    type(self).spans.append((span.name, attrs))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Keep http.server's access lines out of the test output."""


@pytest.fixture
def otlp_collector() -> Iterator[str]:
    _Collector.spans = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_tracing_when_endpoint_set_exports_server_spans(
    otlp_collector: str, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    settings = make_settings(
        f"sqlite+aiosqlite:///{db}", tmp_path, observability={"otlp_endpoint": otlp_collector}
    )
    container = build_container(settings)
    app = create_app(settings, container=container, run_worker=False)
    app.include_router(probe_router)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http:
        await http.get(
            "/_probe/items/abc",
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        )
    async with app.router.lifespan_context(app):
        pass  # shutdown flushes the batch processor
    names = [name for name, _ in _Collector.spans]
    assert "GET /_probe/items/{item_id}" in names
    attrs = dict(_Collector.spans)["GET /_probe/items/{item_id}"]
    assert "abc" not in str(attrs)
    # The incoming W3C traceparent is continued, so our span joins the caller's trace.
    assert attrs["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
