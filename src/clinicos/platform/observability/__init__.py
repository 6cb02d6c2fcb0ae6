"""Logs (structlog JSON with PHI redaction), Prometheus metrics, optional OpenTelemetry tracing."""
