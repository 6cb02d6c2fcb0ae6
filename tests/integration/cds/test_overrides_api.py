"""Overrides over HTTP, on SQLite and PostgreSQL: WARN approved at once, BLOCK pending until a
pharmacist other than the author co-signs, and every refusal (role, reason, outcome, duplicate,
other tenant) with its status and code."""

from __future__ import annotations

from datetime import datetime

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.config import DEFAULT_OVERRIDE_REASON_CODES
from tests.integration.cds.api_cases import signed_in
from tests.integration.cds.override_support import (
    ATTEST_CASE,
    BLOCK_CASE,
    PASS_CASE,
    REASONS,
    WARN_CASE,
    cosign,
    evaluated,
    override,
    override_rows,
)
from tests.support.tenancy_fixtures import assert_problem, new_member, sign_in

RESPONSE_KEYS = {
    "override_id",
    "evaluation_id",
    "status",
    "reason_code",
    "created_by",
    "created_at",
    "cosigned_by",
    "cosigned_at",
}


async def test_override_when_evaluation_warns_is_approved_at_once(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await signed_in(container, client, "warn-org", "clinician")
    clinician = staff["clinician"]
    evaluation = await evaluated(client, clinician, WARN_CASE)
    assert evaluation["outcome"] == "WARN"

    response = await override(client, clinician, evaluation["evaluation_id"], "patient_tolerating")

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == RESPONSE_KEYS
    assert body["status"] == "approved"
    assert (body["evaluation_id"], body["reason_code"], body["created_by"]) == (
        evaluation["evaluation_id"],
        "patient_tolerating",
        clinician.member.user_id,
    )
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    assert (body["cosigned_by"], body["cosigned_at"]) == (None, None)
    (row,) = await override_rows(owner_engine, clinician.member.organization_id)
    assert (row.id, row.status, row.comment) == (body["override_id"], "approved", None)


async def test_override_when_evaluation_blocks_waits_for_pharmacist_cosign(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await signed_in(container, client, "block-org", "clinician", "pharmacist")
    clinician, pharmacist = staff["clinician"], staff["pharmacist"]
    evaluation = await evaluated(client, clinician, BLOCK_CASE)
    assert evaluation["outcome"] == "BLOCK"

    created = await override(client, clinician, evaluation["evaluation_id"])
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending_cosign"
    override_id = created.json()["override_id"]
    signed = await cosign(client, pharmacist, override_id)
    again = await cosign(client, pharmacist, override_id)

    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert (body["override_id"], body["status"], body["cosigned_by"]) == (
        override_id,
        "approved",
        pharmacist.member.user_id,
    )
    assert body["cosigned_at"] is not None
    assert_problem(again, 409, "cds_override_not_pending")
    (row,) = await override_rows(owner_engine, clinician.member.organization_id)
    assert (row.status, row.cosigned_by) == ("approved", pharmacist.member.user_id)


async def test_cosign_when_override_already_approved_is_refused(
    container: Container, client: AsyncClient
) -> None:
    staff = await signed_in(container, client, "warn-cosign-org", "clinician", "pharmacist")
    evaluation = await evaluated(client, staff["clinician"], WARN_CASE)
    created = await override(client, staff["clinician"], evaluation["evaluation_id"])

    response = await cosign(client, staff["pharmacist"], created.json()["override_id"])

    assert_problem(response, 409, "cds_override_not_pending")


async def test_cosign_when_author_cosigns_own_override_is_refused(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    # A member who is both clinician and pharmacist may hold both permissions, never both roles
    # in one override.
    staff = await signed_in(container, client, "self-org", "clinician")
    dual = await sign_in(
        client,
        await new_member(
            container,
            organization_id=staff["clinician"].member.organization_id,
            organization_slug="self-org",
            email="dual@self-org.example.com",
            roles=["clinician", "pharmacist"],
        ),
    )
    evaluation = await evaluated(client, dual, BLOCK_CASE)
    created = await override(client, dual, evaluation["evaluation_id"])
    assert created.json()["status"] == "pending_cosign"

    response = await cosign(client, dual, created.json()["override_id"])

    assert_problem(response, 409, "cds_override_self_cosign")
    (row,) = await override_rows(owner_engine, dual.member.organization_id)
    assert (row.status, row.cosigned_by) == ("pending_cosign", None)


async def test_override_when_caller_is_nurse_or_pharmacist_is_forbidden(
    container: Container, client: AsyncClient
) -> None:
    staff = await signed_in(container, client, "role-org", "clinician", "nurse", "pharmacist")
    evaluation = await evaluated(client, staff["clinician"], BLOCK_CASE)
    created = await override(client, staff["clinician"], evaluation["evaluation_id"])
    override_id = created.json()["override_id"]

    by_nurse = await override(client, staff["nurse"], evaluation["evaluation_id"])
    by_pharmacist = await override(client, staff["pharmacist"], evaluation["evaluation_id"])
    nurse_cosign = await cosign(client, staff["nurse"], override_id)
    clinician_cosign = await cosign(client, staff["clinician"], override_id)
    nurse_reasons = await client.get(REASONS, headers=staff["nurse"].headers)

    for response in (by_nurse, by_pharmacist, nurse_cosign, clinician_cosign, nurse_reasons):
        assert_problem(response, 403, "permission_denied")


async def test_override_when_reason_unknown_returns_422_naming_field(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = (await signed_in(container, client, "reason-org", "clinician"))["clinician"]
    evaluation = await evaluated(client, clinician, WARN_CASE)

    response = await override(client, clinician, evaluation["evaluation_id"], "felt_like_it")

    problem = assert_problem(response, 422, "validation_failed")
    assert [e["loc"] for e in problem["errors"]] == [["body", "reason_code"]]
    assert "benefit_outweighs_risk" in problem["errors"][0]["message"]
    assert await override_rows(owner_engine, clinician.member.organization_id) == []


async def test_override_when_reason_missing_or_other_without_comment_returns_422(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = (await signed_in(container, client, "other-org", "clinician"))["clinician"]
    evaluation_id = (await evaluated(client, clinician, WARN_CASE))["evaluation_id"]

    bare = await override(client, clinician, evaluation_id, "other")
    blank = await override(client, clinician, evaluation_id, "other", comment="   ")
    no_reason = await client.post(
        "/api/v1/cds/overrides",
        json={"evaluation_id": evaluation_id},
        headers=clinician.headers,
    )
    too_long = await override(client, clinician, evaluation_id, "other", comment="x" * 1001)

    for response in (bare, blank):
        problem = assert_problem(response, 422, "validation_failed")
        assert [e["loc"] for e in problem["errors"]] == [["body", "comment"]]
    assert [e["loc"] for e in no_reason.json()["errors"]] == [["body", "reason_code"]]
    assert [e["loc"] for e in too_long.json()["errors"]] == [["body", "comment"]]
    assert await override_rows(owner_engine, clinician.member.organization_id) == []
    with_comment = await override(client, clinician, evaluation_id, "other", comment="see note")
    assert with_comment.status_code == 201, with_comment.text


async def test_override_when_outcome_pass_or_attest_returns_409(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await signed_in(container, client, "pass-org", "clinician"))["clinician"]
    passed = await evaluated(client, clinician, PASS_CASE)
    attest = await evaluated(client, clinician, ATTEST_CASE)
    assert (passed["outcome"], attest["outcome"]) == ("PASS", "ATTEST")

    on_pass = await override(client, clinician, passed["evaluation_id"])
    on_attest = await override(client, clinician, attest["evaluation_id"])

    assert_problem(on_pass, 409, "cds_evaluation_not_overridable")
    assert_problem(on_attest, 409, "cds_evaluation_not_overridable")


async def test_override_when_evaluation_already_overridden_returns_409(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    clinician = (await signed_in(container, client, "twice-org", "clinician"))["clinician"]
    evaluation_id = (await evaluated(client, clinician, WARN_CASE))["evaluation_id"]
    first = await override(client, clinician, evaluation_id)

    second = await override(client, clinician, evaluation_id, "patient_tolerating")

    assert first.status_code == 201, first.text
    assert_problem(second, 409, "cds_override_exists")
    assert len(await override_rows(owner_engine, clinician.member.organization_id)) == 1


async def test_override_when_evaluation_of_other_tenant_returns_404_like_unknown(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    a = (await signed_in(container, client, "org-a", "clinician"))["clinician"]
    b = (await signed_in(container, client, "org-b", "clinician"))["clinician"]
    evaluation_id = (await evaluated(client, a, BLOCK_CASE))["evaluation_id"]

    foreign = await override(client, b, evaluation_id)
    unknown = await override(client, b, "00000000-0000-0000-0000-000000000000")

    foreign_body = assert_problem(foreign, 404, "not_found")
    unknown_body = assert_problem(unknown, 404, "not_found")
    assert foreign_body["detail"] == unknown_body["detail"]
    assert evaluation_id not in foreign.text
    assert await override_rows(owner_engine, b.member.organization_id) == []
    assert await override_rows(owner_engine, a.member.organization_id) == []


async def test_override_reasons_lists_configured_codes_as_cds_hooks_codings(
    container: Container, client: AsyncClient
) -> None:
    staff = await signed_in(container, client, "reasons-org", "clinician", "pharmacist")

    responses = [await client.get(REASONS, headers=s.headers) for s in staff.values()]

    for response in responses:
        assert response.status_code == 200, response.text
        reasons = response.json()
        assert [r["code"] for r in reasons] == list(DEFAULT_OVERRIDE_REASON_CODES)
        assert {r["system"] for r in reasons} == {"https://clinicos.dev/cds/override-reasons"}
        assert all(set(r) == {"code", "system", "display"} and r["display"] for r in reasons)
