"""Every error reaches the client as RFC 9457 problem+json, with request id and no internals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient

from clinicos.bootstrap import Container, build_container
from clinicos.main import create_app
from tests.conftest import make_settings
from tests.support.probe_routes import router as probe_router

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "instance", "request_id"}


@pytest.fixture
async def probe_client(container: Container) -> AsyncIterator[AsyncClient]:
    app = create_app(container.settings, container=container, run_worker=False)
    app.include_router(probe_router)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        yield http


def assert_problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_route_returns_404_problem(probe_client: AsyncClient) -> None:
    body = assert_problem(await probe_client.get("/no/such/thing/123"), 404, "not_found")
    assert "123" not in json.dumps(body)


async def test_wrong_method_returns_405_problem_with_allow(probe_client: AsyncClient) -> None:
    response = await probe_client.delete("/health")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_malformed_json_returns_400_with_position(probe_client: AsyncClient) -> None:
    response = await probe_client.post(
        "/_probe/doses",
        content=b'{"drug": "apixaban", "dose_mg": }',
        headers={"content-type": "application/json"},
    )
    body = assert_problem(response, 400, "malformed_json")
    assert body["position"] == 32
    assert "position 32" in body["detail"]


async def test_invalid_field_returns_422_naming_field(probe_client: AsyncClient) -> None:
    response = await probe_client.post("/_probe/doses", json={"drug": "", "dose_mg": -5})
    body = assert_problem(response, 422, "validation_failed")
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"body.drug", "body.dose_mg"}
    assert "body.dose_mg" in body["detail"]


async def test_body_over_limit_by_content_length_returns_413(probe_client: AsyncClient) -> None:
    big = b'{"drug": "' + b"x" * (1024 * 1024 + 10) + b'", "dose_mg": 5}'
    response = await probe_client.post(
        "/_probe/doses", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_streamed_body_over_limit_returns_413(probe_client: AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"drug": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'", "dose_mg": 5}'

    response = await probe_client.post(
        "/_probe/doses", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_domain_errors_render_with_their_code(probe_client: AsyncClient) -> None:
    assert_problem(await probe_client.get("/_probe/items/missing"), 404, "not_found")
    body = assert_problem(await probe_client.get("/_probe/items/taken"), 409, "item_exists")
    assert body["instance"] == "/_probe/items/{item_id}"


async def test_unexpected_exception_returns_generic_500_without_internals(
    probe_client: AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await probe_client.get("/_probe/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "Maria" not in response.text and "secret_stuff" not in response.text
    assert "Traceback" not in response.text
    logged = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    errors = [e for e in logged if e.get("event") == "unhandled_exception"]
    assert errors and errors[0]["request_id"] == body["request_id"]
    assert errors[0]["exc_type"] == "builtins.RuntimeError"
    # The exception's message may hold PHI, so it is never written to the log.
    assert all("Maria" not in json.dumps(e) for e in logged)


async def test_request_id_when_well_formed_is_echoed(probe_client: AsyncClient) -> None:
    response = await probe_client.get("/health", headers={"X-Request-ID": "abc-123.x"})
    assert response.headers["x-request-id"] == "abc-123.x"


async def test_request_id_when_malformed_is_replaced(probe_client: AsyncClient) -> None:
    response = await probe_client.get("/health", headers={"X-Request-ID": "bad id\x7f<script>"})
    assert response.headers["x-request-id"] != "bad id\x7f<script>"
    assert len(response.headers["x-request-id"]) == 36


async def test_unreachable_database_returns_503_not_hang(tmp_path: Path) -> None:
    # Nothing listens on port 1: connection refused at once; pool/connect timeouts bound the rest.
    settings = make_settings("postgresql://postgres@127.0.0.1:1/none", tmp_path)
    container = build_container(settings)
    app = create_app(settings, container=container, run_worker=False)
    app.include_router(probe_router)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http:
        ready = await http.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["status"] == "unreachable"
        body = assert_problem(await http.get("/_probe/db"), 503, "service_unavailable")
        assert "127.0.0.1" not in body["detail"]
        assert (await http.get("/health")).status_code == 200
    await container.dispose()
