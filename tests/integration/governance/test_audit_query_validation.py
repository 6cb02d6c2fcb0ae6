"""GET /api/v1/audit validates its query parameters: an identifier with spaces or '@', or a
datetime without a zone, is a 422 problem naming the parameter (it used to be accepted, or
end in a 500 when compared with the stored aware timestamps); well-formed values are a 200
that filters as asked. On SQLite and PostgreSQL, as an auditor of a clinic without MFA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from httpx import AsyncClient

from clinicos.bootstrap import Container
from tests.support.tenancy_fixtures import SignedIn, assert_problem, tenant

AUDIT = "/api/v1/audit"


@pytest.fixture
async def auditor(container: Container, client: AsyncClient) -> SignedIn:
    return await tenant(container, client, "audit-checks", roles=("auditor",))


BAD_QUERIES: dict[str, tuple[dict[str, str], str]] = {
    "actor_id_with_space_and_at": ({"actor_id": "a b@x"}, "query.actor_id"),
    "actor_id_too_long": ({"actor_id": "a" * 201}, "query.actor_id"),
    "target_id_with_space": ({"target_id": "x y"}, "query.target_id"),
    "from_without_zone": ({"from": "2026-01-01T00:00:00"}, "query.from"),
    "to_without_zone": ({"to": "2026-01-01T00:00:00"}, "query.to"),
}


@pytest.mark.parametrize("case", sorted(BAD_QUERIES))
async def test_audit_list_when_query_param_malformed_answers_422_naming_it(
    client: AsyncClient, auditor: SignedIn, case: str
) -> None:
    params, field = BAD_QUERIES[case]

    response = await client.get(AUDIT, params=params, headers=auditor.headers)

    body = assert_problem(response, 422, "validation_failed")
    assert [error["field"] for error in body["errors"]] == [field], body
    assert field in body["detail"]


async def test_audit_list_when_every_query_param_malformed_answers_422_naming_each(
    client: AsyncClient, auditor: SignedIn
) -> None:
    params = {"actor_id": "a b@x", "target_id": "x y", "from": "2026-01-01T00:00:00"}

    response = await client.get(AUDIT, params=params, headers=auditor.headers)

    body = assert_problem(response, 422, "validation_failed")
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"query.actor_id", "query.target_id", "query.from"}


def items_of(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_audit_list_when_ids_and_aware_datetimes_well_formed_answers_200_filtered(
    client: AsyncClient, auditor: SignedIn
) -> None:
    user_id = auditor.member.user_id
    org_id = auditor.member.organization_id
    later = (datetime.now(UTC) + timedelta(days=1)).astimezone(timezone(timedelta(hours=-4)))

    # Act: the sign-in row, by actor and an aware window (Z, and an explicit -04:00 offset).
    by_actor = await client.get(
        AUDIT,
        params={
            "actor_id": user_id,
            "action": "auth.login",
            "from": "2026-01-01T00:00:00Z",
            "to": later.isoformat(),
        },
        headers=auditor.headers,
    )
    # The first listing wrote an audit.read row whose target is the organization.
    by_target = await client.get(
        AUDIT,
        params={"target_type": "audit_trail", "target_id": org_id, "action": "audit.read"},
        headers=auditor.headers,
    )
    nothing = await client.get(
        AUDIT, params={"target_id": "no_such:target.1"}, headers=auditor.headers
    )

    # Assert
    logins = items_of(by_actor)
    assert len(logins) == 1
    assert (logins[0]["actor_id"], logins[0]["action"]) == (user_id, "auth.login")
    reads = items_of(by_target)
    assert len(reads) == 1
    assert (reads[0]["target_id"], reads[0]["actor_id"]) == (org_id, user_id)
    assert items_of(nothing) == []
