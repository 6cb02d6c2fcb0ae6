"""Optional OpenTelemetry tracing: on only when an OTLP/HTTP endpoint is configured."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


class Tracing:
    """Wraps a tracer provider; ``enabled`` is False (and spans cost nothing) when unconfigured."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("clinicos") if provider else None

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextmanager
    def server_span(self, name: str, headers: Mapping[str, str]) -> Iterator[Any]:
        if self._tracer is None:
            yield None
            return
        ctx = propagate.extract(dict(headers))
        with self._tracer.start_as_current_span(name, context=ctx, kind=SpanKind.SERVER) as span:
            yield span

    @staticmethod
    def finish(span: Any, *, route: str, method: str, status: int) -> None:
        if span is None:
            return
        span.update_name(f"{method} {route}")
        span.set_attribute("http.request.method", method)
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def configure_tracing(endpoint: str | None, service_name: str) -> Tracing:
    if not endpoint:
        return Tracing(None)
    # Imported here: the exporter (protobuf) costs ~0.1 s of start-up, for installations that
    # export traces only (cold start is a benchmark target, issue 8).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)
