"""PostgreSQL protections of the audit trail: the app role appends and reads its tenant only.

`container.engine` runs as the non-owner `clinicos_app` role (SET ROLE), as in production.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from clinicos.bootstrap import Container
from clinicos.governance import record_audit, verify_audit_chain
from clinicos.platform.db.engine import create_owner_engine, session_factory


@pytest.fixture
def pg(container: Container) -> Container:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("row-level security and grants are PostgreSQL features")
    return container


async def seed(container: Container) -> tuple[str, str]:
    org_a, org_b = str(uuid.uuid4()), str(uuid.uuid4())
    for org in (org_a, org_b, None):
        async with container.uow(org) as uow:
            await record_audit(
                uow,
                organization_id=org,
                actor_type="user" if org else "anonymous",
                actor_id="user-1" if org else None,
                action="auth.login",
                outcome="success" if org else "failure",
            )
            await uow.commit()
    return org_a, org_b


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET action = 'patient.write'",
        "DELETE FROM audit_event",
        "TRUNCATE audit_event",
        "DELETE FROM audit_chain_head",
    ],
)
async def test_app_role_cannot_change_or_remove_audit_rows(pg: Container, statement: str) -> None:
    org_a, _ = await seed(pg)

    async with pg.engine.connect() as conn:
        await conn.execute(
            text("SELECT set_config('app.organization_id', :o, false)"), {"o": org_a}
        )
        with pytest.raises(ProgrammingError) as excinfo:
            await conn.execute(text(statement))

    assert "permission denied" in str(excinfo.value.orig)


async def test_app_role_without_tenant_sees_only_installation_rows(pg: Container) -> None:
    await seed(pg)

    async with pg.engine.connect() as conn:
        orgs = (await conn.execute(text("SELECT organization_id FROM audit_event"))).all()
        heads = (await conn.execute(text("SELECT chain_key FROM audit_chain_head"))).all()

    assert orgs == [(None,)]
    assert heads == [("installation",)]


async def test_app_role_with_tenant_sees_only_that_tenant(pg: Container) -> None:
    org_a, _ = await seed(pg)

    async with pg.engine.begin() as conn:
        await conn.execute(text("SELECT set_config('app.organization_id', :o, true)"), {"o": org_a})
        orgs = (await conn.execute(text("SELECT organization_id FROM audit_event"))).all()
        heads = (await conn.execute(text("SELECT chain_key FROM audit_chain_head"))).all()

    assert orgs == [(org_a,)]
    assert heads == [(org_a,)]


async def test_app_role_cannot_append_to_another_tenants_chain(pg: Container) -> None:
    org_a, org_b = await seed(pg)

    async with pg.engine.begin() as conn:
        await conn.execute(text("SELECT set_config('app.organization_id', :o, true)"), {"o": org_a})
        with pytest.raises(DBAPIError) as excinfo:
            await conn.execute(
                text(
                    "INSERT INTO audit_event (id, organization_id, chain_key, seq, occurred_at, "
                    "actor_type, action, outcome, prev_hash, hash) VALUES (:id, :org, :org, 9, "
                    "now(), 'user', 'auth.login', 'success', :h, :h)"
                ),
                {"id": str(uuid.uuid4()), "org": org_b, "h": "0" * 64},
            )

    assert "row-level security" in str(excinfo.value.orig)


async def test_verify_from_wrongly_scoped_transaction_refused(pg: Container) -> None:
    org_a, org_b = await seed(pg)

    async with pg.uow(org_b) as uow:
        with pytest.raises(ValueError, match="scoped to another organization"):
            await verify_audit_chain(uow, organization_id=org_a)
    async with pg.uow() as uow:
        with pytest.raises(ValueError, match="scoped to another organization"):
            await verify_audit_chain(uow, organization_id=org_a)


async def test_owner_superuser_verifies_any_chain_without_tenant(pg: Container) -> None:
    org_a, _ = await seed(pg)
    engine = create_owner_engine(pg.settings)
    try:
        async with session_factory(engine)() as session:
            report = await verify_audit_chain(session, organization_id=org_a)
    finally:
        await engine.dispose()

    assert report.ok and report.rows_checked == 1
