"""The permission matrix: default deny, unknown roles refused, the generated Markdown table, and
(at the end, on SQLite and PostgreSQL through the HTTP API) what each role gets from the routes.

The HTTP checks live here, next to the matrix they exercise, as the brief for this suite asked;
they use the shared `container` and `client` fixtures and so run on both engines."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from clinicos.bootstrap import Container
from clinicos.identity.permissions import (
    MATRIX,
    Permission,
    Role,
    is_allowed,
    matrix_markdown,
    permissions_for,
)
from tests.support.tenancy_fixtures import (
    SignedIn,
    assert_problem,
    new_member,
    new_organization,
    sign_in,
)

# -- default deny --------------------------------------------------------------------------------


def test_permissions_for_when_no_roles_grants_nothing() -> None:
    assert permissions_for([]) == frozenset()
    assert not any(is_allowed([], p) for p in Permission)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_is_allowed_when_no_grant_for_role_denies(role: Role) -> None:
    denied = {p for p in Permission if role not in MATRIX.get(p, frozenset())}
    granted = set(Permission) - denied

    assert {p for p in denied if is_allowed([role], p)} == set()
    assert {p for p in granted if not is_allowed([role], p)} == set()
    assert permissions_for([role]) == granted


def test_matrix_when_inspected_decides_every_permission_explicitly() -> None:
    assert set(MATRIX) == set(Permission)
    assert all(roles <= set(Role) for roles in MATRIX.values())


@pytest.mark.parametrize(
    ("permission", "allowed"),
    [
        (Permission.audit_read, {Role.admin, Role.auditor}),
        (Permission.audit_verify, {Role.admin, Role.auditor}),
        (Permission.user_manage, {Role.admin}),
        (Permission.organization_manage, {Role.admin}),
    ],
    ids=["audit_read", "audit_verify", "user_manage", "organization_manage"],
)
def test_matrix_when_sensitive_permission_grants_only_named_roles(
    permission: Permission, allowed: set[Role]
) -> None:
    assert {r for r in Role if is_allowed([r], permission)} == allowed


def test_is_allowed_when_clinician_asks_for_users_or_audit_denies() -> None:
    for permission in (
        Permission.user_read,
        Permission.user_manage,
        Permission.audit_read,
        Permission.audit_verify,
    ):
        assert not is_allowed([Role.clinician], permission)


def test_permissions_for_when_several_roles_returns_union() -> None:
    both = permissions_for([Role.clinician, Role.auditor])

    assert both == permissions_for([Role.clinician]) | permissions_for([Role.auditor])
    assert Permission.audit_read in both


def test_permissions_for_when_roles_given_as_strings_matches_enum() -> None:
    assert permissions_for(["auditor", "nurse"]) == permissions_for([Role.auditor, Role.nurse])


@pytest.mark.parametrize("unknown", ["superuser", "Admin", "", "admin "])
def test_permissions_for_when_role_unknown_raises_value_error(unknown: str) -> None:
    with pytest.raises(ValueError):
        permissions_for([unknown])
    # An unknown role next to a real one is refused too, not silently ignored.
    with pytest.raises(ValueError):
        is_allowed([Role.admin.value, unknown], Permission.user_read)


# -- the generated table -------------------------------------------------------------------------


def _table_rows() -> list[list[str]]:
    lines = matrix_markdown().strip().splitlines()
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def header_roles() -> list[str]:
    return _table_rows()[0][1:]


def test_matrix_markdown_when_rendered_lists_every_role_and_permission() -> None:
    # Arrange
    rows = _table_rows()
    header, separator, body = rows[0], rows[1], rows[2:]

    # Assert
    assert header == ["permission", *[r.value for r in Role]]
    assert all(set(cell) == {"-"} for cell in separator)
    assert len(separator) == len(header)
    assert [row[0] for row in body] == [f"`{p.value}`" for p in Permission]
    assert all(len(row) == len(header) for row in body)


def test_matrix_markdown_when_rendered_ticks_exactly_the_granted_cells() -> None:
    body = _table_rows()[2:]

    ticked = {
        (Permission(row[0].strip("`")), Role(role))
        for row in body
        for role, cell in zip(header_roles(), row[1:], strict=True)
        if cell == "✓"
    }
    blank = sum(1 for row in body for cell in row[1:] if cell == "")

    assert ticked == {(p, r) for p, roles in MATRIX.items() for r in roles}
    assert blank == len(Permission) * len(Role) - len(ticked)


# -- through the HTTP API (SQLite and PostgreSQL) ------------------------------------------------


@pytest.fixture
async def staff(container: Container, client: AsyncClient) -> dict[str, SignedIn]:
    """An admin, a clinician and an auditor of one clinic whose admins need no MFA."""
    org_id = await new_organization(container, "perm-clinic", mfa_required_for_admin=False)
    signed: dict[str, SignedIn] = {}
    for role in ("admin", "clinician", "auditor"):
        member = await new_member(
            container,
            organization_id=org_id,
            organization_slug="perm-clinic",
            email=f"{role}@perm-clinic.example.com",
            roles=[role],
        )
        signed[role] = await sign_in(client, member)
    return signed


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/audit", "/api/v1/audit/verify"])
async def test_route_when_clinician_lacks_permission_returns_403(
    client: AsyncClient, staff: dict[str, SignedIn], path: str
) -> None:
    response = await client.get(path, headers=staff["clinician"].headers)

    body = assert_problem(response, 403, "permission_denied")
    assert "permission" in body["detail"]


async def test_audit_routes_when_auditor_returns_200(
    client: AsyncClient, staff: dict[str, SignedIn]
) -> None:
    # Act
    listed = await client.get("/api/v1/audit", headers=staff["auditor"].headers)
    verified = await client.get("/api/v1/audit/verify", headers=staff["auditor"].headers)

    # Assert
    assert listed.status_code == 200, listed.text
    actions = {e["action"] for e in listed.json()["items"]}
    assert {"organization.create", "user.create", "auth.login"} <= actions
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True
    assert verified.json()["rows_checked"] > 0


async def test_users_route_when_auditor_may_read_but_not_manage(
    client: AsyncClient, staff: dict[str, SignedIn]
) -> None:
    read = await client.get("/api/v1/users", headers=staff["auditor"].headers)
    manage = await client.post(
        f"/api/v1/users/{staff['clinician'].member.user_id}/disable",
        headers=staff["auditor"].headers,
    )

    assert read.status_code == 200, read.text
    assert_problem(manage, 403, "permission_denied")


async def test_users_route_when_admin_without_mandatory_mfa_returns_200(
    client: AsyncClient, staff: dict[str, SignedIn]
) -> None:
    response = await client.get("/api/v1/users", headers=staff["admin"].headers)

    assert response.status_code == 200, response.text
    emails = {u["email"]: u["roles"] for u in response.json()["items"]}
    assert emails == {
        "admin@perm-clinic.example.com": ["admin"],
        "clinician@perm-clinic.example.com": ["clinician"],
        "auditor@perm-clinic.example.com": ["auditor"],
    }
