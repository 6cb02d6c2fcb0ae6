"""Health, readiness and metrics against the real app on both engines."""

from httpx import AsyncClient


async def test_health_when_process_up_returns_200(client: AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_schema_current_returns_200(client: AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["schema"]["status"] == "ok"
    assert body["checks"]["schema"]["current"] == body["checks"]["schema"]["head"]
