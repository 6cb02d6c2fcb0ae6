"""Helpers for record tests: a clinic with one signed-in member per role, and patients made
through the API."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from clinicos.bootstrap import Container
from tests.support.tenancy_fixtures import SignedIn, new_member, new_organization, sign_in

ROLES = ("clinician", "nurse", "pharmacist", "billing", "agent", "researcher", "admin")


async def clinic(
    container: Container, client: AsyncClient, slug: str, *roles: str
) -> dict[str, SignedIn]:
    """A fresh organization with one signed-in member per role (all of ROLES by default)."""
    organization_id = await new_organization(container, slug)
    members: dict[str, SignedIn] = {}
    for role in dict.fromkeys(roles or ROLES):
        member = await new_member(
            container,
            organization_id=organization_id,
            organization_slug=slug,
            email=f"{role}@{slug}.example.com",
            roles=[role],
        )
        members[role] = await sign_in(client, member)
    return members


def patient_body(mrn: str = "MRN-0001", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mrn": mrn,
        "given_name": "Ana María",
        "family_name": "Quispe Mamani",
        "birth_date": "1956-03-14",
        "sex": "female",
        "national_id": "4821337 LP",
        "phone": "+591 2 211-0000",
        "email": "ana.quispe@example.bo",
        "address": {"lines": ["Av. 6 de Marzo 1234"], "city": "El Alto", "country": "BO"},
        "preferred_language": "es",
    }
    body.update(overrides)
    return body


async def create_patient(client: AsyncClient, who: SignedIn, **overrides: Any) -> dict[str, Any]:
    """Register a patient through the API; fails the test unless it is created."""
    response = await client.post(
        "/api/v1/patients", json=patient_body(**overrides), headers=who.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
