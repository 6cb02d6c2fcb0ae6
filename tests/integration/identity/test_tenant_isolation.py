"""Tenant isolation, on SQLite and PostgreSQL: organization B never reaches organization A's data.

* Every route that takes an object id is enumerated from the app itself; each must be covered
  by a case here (a new route with an id fails `test_id_routes_...` until it is), and for each
  B's admin gets the same 404 as for an id that does not exist, never 403, and A's object is left
  as it was.
* A client-supplied ``organization_id`` in a body is rejected and nothing is created.
* The audit trail: B's listing never shows A's events; A's verification walks A's chain only.
* PostgreSQL only: raw SQL as the app role sees no tenant's audit rows without
  ``app.organization_id``, only A's with it, and can neither update nor delete them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container, all_models_metadata
from clinicos.identity.models import USER_ACTIVE, AuthSession, UserAccount
from clinicos.main import create_app
from tests.integration.governance.isolation_consent import CONSENT_ID_ROUTE_CASES
from tests.integration.governance.isolation_dsr import DSR_ID_ROUTE_CASES
from tests.integration.interop.isolation_fhir import FHIR_ID_ROUTE_CASES
from tests.integration.records.isolation_clinical import CLINICAL_ID_ROUTE_CASES
from tests.integration.records.isolation_notes import NOTE_ID_ROUTE_CASES
from tests.integration.records.isolation_patients import PATIENT_ID_ROUTE_CASES
from tests.support.isolation import (
    IdRouteCase,
    ObjectIds,
    World,
    assert_not_found,
    fill,
    member_of,
    missing_ids,
    object_id,
)
from tests.support.tenancy_fixtures import (
    PASSWORD,
    SignedIn,
    assert_problem,
    audit_count,
    new_member,
    routes_with_object_id,
    sign_in,
    tenant,
)

API = "/api/v1"


@pytest.fixture
async def world(container: Container, client: AsyncClient, owner_engine: AsyncEngine) -> World:
    a = await tenant(container, client, "clinic-a")
    b = await tenant(container, client, "clinic-b")
    return World(container=container, client=client, owner_engine=owner_engine, a=a, b=b)


async def staff_of_a(world: World, local: str = "target") -> SignedIn:
    """A signed-in clinician of A: the object the foreign admin aims at."""
    member = await new_member(
        world.container,
        organization_id=world.a.member.organization_id,
        organization_slug=world.a.member.organization_slug,
        email=f"{local}@clinic-a.example.com",
        roles=["clinician"],
    )
    return await sign_in(world.client, member)


async def load_user(container: Container, user_id: str) -> UserAccount:
    async with container.uow() as uow:
        user = await uow.session.get(UserAccount, user_id)
        assert user is not None
        return user


async def lock(container: Container, user_id: str) -> None:
    async with container.uow() as uow:
        user = await uow.session.get(UserAccount, user_id)
        assert user is not None
        user.locked_until = uow.clock.now() + timedelta(minutes=15)
        await uow.commit()


# -- every route that takes an object id ---------------------------------------------------------


async def _user_in_a(world: World) -> str:
    return (await staff_of_a(world)).member.user_id


async def _locked_user_in_a(world: World) -> str:
    user_id = await _user_in_a(world)
    await lock(world.container, user_id)
    return user_id


async def _user_unchanged(world: World, user_id: str) -> None:
    user = await load_user(world.container, user_id)
    assert user.status == USER_ACTIVE


async def _user_active_and_sessions_open(world: World, user_id: str) -> None:
    await _user_unchanged(world, user_id)
    # Disabling revokes every session; B's attempt must not have done so either.
    async with world.container.uow() as uow:
        revoked = (
            await uow.session.execute(
                select(AuthSession.revoked_at).where(AuthSession.user_id == user_id)
            )
        ).all()
    assert revoked, "the target never signed in: nothing to compare"
    assert all(at is None for (at,) in revoked)


async def _user_still_locked(world: World, user_id: str) -> None:
    user = await load_user(world.container, user_id)
    assert user.locked_until is not None
    assert user.locked_until > world.container.clock.now()


async def _user_with_mfa_in_a(world: World) -> str:
    user_id = await _user_in_a(world)
    async with world.container.uow() as uow:
        user = await uow.session.get(UserAccount, user_id)
        assert user is not None
        user.mfa_secret_sealed = world.container.identity.totp_box.seal(
            b"JBSWY3DPEHPK3PXP", aad=user.id
        )
        user.mfa_enabled_at = uow.clock.now()
        await uow.commit()
    return user_id


async def _mfa_still_on(world: World, user_id: str) -> None:
    assert (await load_user(world.container, user_id)).mfa_enabled


async def _pending_override_in_a(world: World) -> str:
    """A BLOCK evaluation in A (dabigatran VTE at CrCl 29), overridden by A's clinician."""
    clinician = await staff_of_a(world, "prescriber")
    week_ago = "2026-11-15"
    evaluated = await world.client.post(
        f"{API}/cds/evaluate",
        headers=clinician.headers,
        json={
            "as_of": "2026-11-22T10:00:00Z",
            "patient": {
                "age_years": 75,
                "sex": "male",
                "weight_kg": 70,
                "weight_measured_at": week_ago,
                "serum_creatinine_mg_dl": 2.5,
                "creatinine_measured_at": week_ago,
            },
            "order": {
                "drug": "dabigatran",
                "dose_mg": 150,
                "frequency": "BID",
                "indication": "vte_treatment",
            },
        },
    )
    assert evaluated.status_code == 200, evaluated.text
    assert evaluated.json()["outcome"] == "BLOCK", evaluated.text
    created = await world.client.post(
        f"{API}/cds/overrides",
        headers=clinician.headers,
        json={
            "evaluation_id": evaluated.json()["evaluation_id"],
            "reason_code": "specialist_recommendation",
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending_cosign"
    return str(created.json()["override_id"])


async def _override_still_pending(world: World, override_id: str) -> None:
    async with world.owner_engine.connect() as conn:
        status = (
            await conn.execute(
                text("SELECT status, cosigned_by FROM cds_override WHERE id = :id"),
                {"id": override_id},
            )
        ).one()
    assert tuple(status) == ("pending_cosign", None)


ID_ROUTE_CASES: dict[tuple[str, str], IdRouteCase] = {
    ("GET", f"{API}/users/{{user_id}}"): IdRouteCase(
        create_in_a=_user_in_a, intact=_user_unchanged
    ),
    ("POST", f"{API}/users/{{user_id}}/disable"): IdRouteCase(
        create_in_a=_user_in_a, intact=_user_active_and_sessions_open
    ),
    ("POST", f"{API}/users/{{user_id}}/unlock"): IdRouteCase(
        create_in_a=_locked_user_in_a, intact=_user_still_locked
    ),
    ("POST", f"{API}/users/{{user_id}}/mfa/reset"): IdRouteCase(
        create_in_a=_user_with_mfa_in_a, intact=_mfa_still_on
    ),
    ("POST", f"{API}/cds/overrides/{{override_id}}/cosign"): IdRouteCase(
        create_in_a=_pending_override_in_a,
        intact=_override_still_pending,
        caller_role="pharmacist",
        id_field="override_id",
    ),
}


ID_ROUTE_CASES.update(PATIENT_ID_ROUTE_CASES)
ID_ROUTE_CASES.update(NOTE_ID_ROUTE_CASES)
ID_ROUTE_CASES.update(CLINICAL_ID_ROUTE_CASES)
ID_ROUTE_CASES.update(FHIR_ID_ROUTE_CASES)
ID_ROUTE_CASES.update(CONSENT_ID_ROUTE_CASES)
ID_ROUTE_CASES.update(DSR_ID_ROUTE_CASES)
# Parameterised routes whose parameter names no tenant's object, and where else their
# per-organization scoping is proved.
NOT_OBJECT_ROUTES: dict[tuple[str, str], str] = {
    ("PUT", "/api/v1/flags/{key}"): (
        "a flag key names a setting every organization has; "
        "tests/integration/governance/test_feature_flags.py proves each organization's is its own"
    ),
}


async def call(world: World, key: tuple[str, str], ids: ObjectIds, who: SignedIn) -> Response:
    method, path = key
    return await world.client.request(
        method, fill(path, ids), headers=who.headers, json=ID_ROUTE_CASES[key].body_with(ids)
    )


def test_id_routes_when_app_assembled_are_all_covered_by_isolation_cases(
    container: Container,
) -> None:
    # Arrange
    app = create_app(container.settings, container=container, run_worker=False)

    # Act
    enumerated = routes_with_object_id(app)

    # Assert
    assert enumerated, "no route with an object id found: is the app assembled?"
    enumerated -= set(NOT_OBJECT_ROUTES)
    assert set(ID_ROUTE_CASES) == enumerated, (
        f"uncovered: {sorted(enumerated - set(ID_ROUTE_CASES))}; "
        f"stale: {sorted(set(ID_ROUTE_CASES) - enumerated)}"
    )


@pytest.mark.parametrize("key", sorted(ID_ROUTE_CASES), ids=lambda k: f"{k[0]} {k[1]}")
async def test_id_route_when_object_belongs_to_other_tenant_returns_404(
    world: World, key: tuple[str, str]
) -> None:
    # Arrange
    case = ID_ROUTE_CASES[key]
    b_caller, a_caller = world.b, world.a
    if case.caller_role is not None:
        b_caller = await member_of(world, world.b, case.caller_role)
        a_caller = await member_of(world, world.a, case.caller_role)
    ids = await case.create_in_a(replace(world, a=a_caller) if case.created_by_caller else world)
    target = object_id(key[1], ids)
    a_audit_before = await audit_count(world.owner_engine, world.a.member.organization_id)

    # Act
    foreign = await call(world, key, ids, who=b_caller)
    missing = await call(world, key, missing_ids(key[1]), who=b_caller)

    # Assert: a plain 404, indistinguishable from an id that does not exist.
    assert assert_not_found(foreign) == assert_not_found(missing)
    assert target not in foreign.text
    assert await audit_count(world.owner_engine, world.a.member.organization_id) == (
        a_audit_before
    ), "B's attempt wrote into A's audit chain"
    await case.intact(world, ids)

    # Control: the same call by A's own admin (or member with the role) reaches the object.
    own = await call(world, key, ids, who=a_caller)
    assert own.status_code in (200, 201), own.text
    assert case.owned_id(own.json()) == target


# -- client-supplied organization_id -------------------------------------------------------------


async def test_create_user_when_body_names_organization_id_returns_422_and_creates_nothing(
    world: World,
) -> None:
    # Arrange
    body = {
        "email": "smuggled@clinic-a.example.com",
        "display_name": "Smuggled",
        "roles": ["clinician"],
        "password": PASSWORD,
    }

    # Act
    smuggled = await world.client.post(
        f"{API}/users",
        headers=world.a.headers,
        json={**body, "organization_id": world.b.member.organization_id},
    )

    # Assert
    problem = assert_problem(smuggled, 422, "validation_failed")
    assert [e["loc"] for e in problem["errors"]] == [["body", "organization_id"]]
    assert problem["errors"][0]["type"] == "extra_forbidden"
    async with world.container.uow() as uow:
        created = await uow.session.scalar(
            select(UserAccount.id).where(UserAccount.email == body["email"])
        )
    assert created is None

    # Control: without the field the same body creates the user, in A only.
    plain = await world.client.post(f"{API}/users", headers=world.a.headers, json=body)
    assert plain.status_code == 201, plain.text
    a_users = await world.client.get(f"{API}/users", headers=world.a.headers)
    b_users = await world.client.get(f"{API}/users", headers=world.b.headers)
    assert body["email"] in {u["email"] for u in a_users.json()["items"]}
    assert {u["email"] for u in b_users.json()["items"]} == {world.b.member.email}


# -- the audit trail -----------------------------------------------------------------------------


async def test_audit_list_when_other_tenant_reads_never_shows_a_events(world: World) -> None:
    # Arrange: A's admin creates a user, so A's chain holds events naming A's people.
    created = await world.client.post(
        f"{API}/users",
        headers=world.a.headers,
        json={
            "email": "new@clinic-a.example.com",
            "display_name": "New",
            "roles": ["nurse"],
            "password": PASSWORD,
        },
    )
    assert created.status_code == 201, created.text
    new_user_id = created.json()["id"]
    a_events = (await world.client.get(f"{API}/audit?limit=500", headers=world.a.headers)).json()
    a_ids = {e["id"] for e in a_events["items"]}
    assert any(e["target_id"] == new_user_id for e in a_events["items"])

    # Act
    b_all = await world.client.get(f"{API}/audit?limit=500", headers=world.b.headers)
    b_by_target = await world.client.get(
        f"{API}/audit", params={"target_id": new_user_id}, headers=world.b.headers
    )
    b_by_actor = await world.client.get(
        f"{API}/audit", params={"actor_id": world.a.member.user_id}, headers=world.b.headers
    )

    # Assert
    assert b_all.status_code == 200, b_all.text
    b_items = b_all.json()["items"]
    assert b_items, "B sees no events at all: the check below would prove nothing"
    assert {e["id"] for e in b_items}.isdisjoint(a_ids)
    a_people = {world.a.member.user_id, new_user_id, world.a.member.organization_id}
    assert not any(e["actor_id"] in a_people or e["target_id"] in a_people for e in b_items)
    assert b_by_target.json()["items"] == []
    assert b_by_actor.json()["items"] == []


async def test_audit_verify_when_a_asks_covers_only_a_chain(world: World) -> None:
    # Arrange
    org_a = world.a.member.organization_id
    org_b = world.b.member.organization_id
    a_rows = await audit_count(world.owner_engine, org_a)
    b_rows = await audit_count(world.owner_engine, org_b)
    assert a_rows and b_rows

    # Act
    first = await world.client.get(f"{API}/audit/verify", headers=world.a.headers)
    # B's chain is tampered with; A's verification must neither see nor mind it.
    async with world.owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE audit_event SET action = 'x.y' WHERE chain_key = :k AND seq = 1"),
            {"k": org_b},
        )
    second = await world.client.get(f"{API}/audit/verify", headers=world.a.headers)
    b_report = await world.client.get(f"{API}/audit/verify", headers=world.b.headers)

    # Assert
    assert first.json() == {
        "ok": True,
        "rows_checked": a_rows,
        "first_bad_seq": None,
        "first_bad_id": None,
        "reason": None,
        "purged_through_seq": 0,
    }
    # The first verification appended one audit.verify row to A's chain, and nothing else.
    assert second.json()["ok"] is True
    assert second.json()["rows_checked"] == a_rows + 1
    assert b_report.json()["ok"] is False
    assert b_report.json()["first_bad_seq"] == 1


# -- PostgreSQL: row-level security as the app role ----------------------------------------------


@pytest.fixture
def pg_world(world: World) -> World:
    if world.container.engine.dialect.name != "postgresql":
        pytest.skip("row-level security and table grants exist on PostgreSQL only")
    return world


async def test_raw_sql_as_app_role_without_tenant_setting_sees_no_tenant_audit_rows(
    pg_world: World,
) -> None:
    # Arrange: both tenants have rows (counted as the owner, who bypasses row-level security).
    assert await audit_count(pg_world.owner_engine, pg_world.a.member.organization_id) > 0
    assert await audit_count(pg_world.owner_engine, pg_world.b.member.organization_id) > 0

    # Act
    async with pg_world.container.engine.connect() as conn:
        role = (await conn.execute(text("SELECT current_user"))).scalar_one()
        setting = (
            await conn.execute(text("SELECT current_setting('app.organization_id', true)"))
        ).scalar_one()
        visible = (
            await conn.execute(
                text("SELECT count(*) FROM audit_event WHERE organization_id IS NOT NULL")
            )
        ).scalar_one()

    # Assert
    assert role == "clinicos_app"
    assert setting in (None, "")
    assert visible == 0


async def test_raw_sql_as_app_role_with_tenant_a_sees_only_a_rows(pg_world: World) -> None:
    # Arrange
    org_a = pg_world.a.member.organization_id
    a_rows = await audit_count(pg_world.owner_engine, org_a)

    # Act
    async with pg_world.container.engine.begin() as conn:
        await conn.execute(
            text("SELECT set_config('app.organization_id', :org, true)"), {"org": org_a}
        )
        seen = (
            await conn.execute(
                text(
                    "SELECT organization_id, count(*) FROM audit_event "
                    "WHERE organization_id IS NOT NULL GROUP BY organization_id"
                )
            )
        ).all()

    # Assert
    assert seen == [(org_a, a_rows)]


async def test_raw_sql_tenant_setting_when_transaction_ends_does_not_carry_over(
    pg_world: World,
) -> None:
    # Arrange: one pooled connection, scoped to A inside a first transaction.
    org_a = pg_world.a.member.organization_id
    async with pg_world.container.engine.connect() as conn:
        async with conn.begin():
            await conn.execute(
                text("SELECT set_config('app.organization_id', :org, true)"), {"org": org_a}
            )
            inside = (await conn.execute(text("SELECT count(*) FROM audit_event"))).scalar_one()

        # Act: the next transaction on the same connection.
        async with conn.begin():
            after = (
                await conn.execute(
                    text("SELECT count(*) FROM audit_event WHERE organization_id IS NOT NULL")
                )
            ).scalar_one()

    # Assert
    assert inside > 0
    assert after == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET action = 'x.y' WHERE organization_id = :org",
        "DELETE FROM audit_event WHERE organization_id = :org",
    ],
    ids=["update", "delete"],
)
async def test_raw_sql_as_app_role_when_changing_audit_rows_permission_denied(
    pg_world: World, statement: str
) -> None:
    # Arrange
    org_a = pg_world.a.member.organization_id
    before = await audit_count(pg_world.owner_engine, org_a)

    # Act: scoped to A, so row-level security would let the rows through: the grant refuses.
    async with pg_world.container.engine.connect() as conn:
        await conn.execute(
            text("SELECT set_config('app.organization_id', :org, false)"), {"org": org_a}
        )
        with pytest.raises(ProgrammingError) as excinfo:
            await conn.execute(text(statement), {"org": org_a})
        await conn.rollback()

    # Assert
    assert "permission denied" in str(excinfo.value.orig)
    assert await audit_count(pg_world.owner_engine, org_a) == before


# Tables that carry organization_id but have no row-level security, read across tenants by
# design: sign-in finds a user's memberships before a tenant is known and bearer-token checks read
# the session first (identity's tables are installation-level, docs/adr/0009), and the outbox
# worker drains every tenant's events (not yet named in ADR 0009). Services scope these in code.
# A new table with organization_id fails here until it gets forced row-level security or is
# added to this list together with a recorded decision.
INSTALLATION_LEVEL_TENANT_TABLES = {"membership", "auth_session", "outbox_message"}


async def test_tables_with_organization_id_when_not_exempt_have_forced_row_level_security(
    pg_world: World,
) -> None:
    # Arrange
    tenant_tables = {
        table.name
        for table in all_models_metadata().sorted_tables
        if "organization_id" in table.columns
    }

    # Act
    async with pg_world.owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relkind = 'r' AND relname = ANY(:names)"
                ),
                {"names": sorted(tenant_tables)},
            )
        ).all()
        database_tables = set(await conn.run_sync(lambda sync: sa_inspect(sync).get_table_names()))

    # Assert
    assert tenant_tables <= database_tables
    protected = {name for name, enabled, forced in rows if enabled and forced}
    assert "audit_event" in protected
    assert tenant_tables - protected == INSTALLATION_LEVEL_TENANT_TABLES
