"""An engine that raises never reads as PASS: the check is a 500 ``cds_engine_failed`` problem
(its text not passed on), the alert metric counts it, and nothing of it is recorded.

The fault is injected by replacing the pure engine function the use case calls — the database,
the app and the HTTP path stay real."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest
from httpx import AsyncClient
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import clinicos.cds.services as cds_services
from clinicos.bootstrap import Container
from tests.integration.cds.api_cases import EVALUATE, base_body, signed_in


def failures(path: str) -> float:
    value = REGISTRY.get_sample_value("clinicos_cds_engine_failures_total", {"path": path})
    return value or 0.0


def broken_engine(*args: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError("engine bug while reading creatinine 5.0 of Quispe")


async def test_engine_exception_is_a_500_problem_counted_and_not_recorded(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staff = await signed_in(container, client, "cds-engine-fail", "clinician")
    monkeypatch.setattr(cds_services, "evaluate", broken_engine)
    before = failures("inline")

    response = await client.post(EVALUATE, json=base_body(), headers=staff["clinician"].headers)

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "cds_engine_failed"
    assert "PASS" not in response.text and "outcome" not in problem
    assert "Quispe" not in response.text and "5.0" not in response.text
    assert failures("inline") == before + 1
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM cds_evaluation"))).scalar() == 0
