"""The one permission matrix: which role may do what. Default deny: a permission not listed for
any of the actor's roles is refused. Routes declare the permission they need (see routes.py)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    clinician = "clinician"
    nurse = "nurse"
    pharmacist = "pharmacist"
    billing = "billing"
    agent = "agent"
    supervisor = "supervisor"
    researcher = "researcher"
    auditor = "auditor"


class Permission(StrEnum):
    # identity
    organization_read = "organization:read"
    organization_manage = "organization:manage"
    user_read = "user:read"
    user_manage = "user:manage"
    # governance
    audit_read = "audit:read"
    audit_verify = "audit:verify"
    consent_read = "consent:read"
    consent_write = "consent:write"
    flag_read = "flag:read"
    flag_manage = "flag:manage"
    kpi_read = "kpi:read"
    dsr_request = "dsr:request"
    dsr_read = "dsr:read"
    dsr_fulfil = "dsr:fulfil"
    legal_hold_manage = "legal_hold:manage"
    retention_read = "retention:read"
    research_export = "research:export"
    # records
    patient_read = "patient:read"
    patient_write = "patient:write"
    clinical_read = "clinical:read"
    clinical_write = "clinical:write"
    note_read = "note:read"
    note_write = "note:write"
    prescription_write = "prescription:write"
    records_import = "records:import"
    # cds
    cds_evaluate = "cds:evaluate"
    cds_override = "cds:override"
    cds_cosign = "cds:cosign"


MATRIX: dict[Permission, frozenset[Role]] = {
    Permission.organization_read: frozenset(Role),
    Permission.organization_manage: frozenset({Role.admin}),
    Permission.user_read: frozenset({Role.admin, Role.supervisor, Role.auditor}),
    Permission.user_manage: frozenset({Role.admin}),
    Permission.audit_read: frozenset({Role.admin, Role.auditor}),
    Permission.audit_verify: frozenset({Role.admin, Role.auditor}),
    # Consent: recorded where the patient is met (care team, the contact centre for WhatsApp
    # opt-ins); read by them and by auditors (who check it was asked).
    Permission.consent_read: frozenset(
        {Role.clinician, Role.nurse, Role.pharmacist, Role.agent, Role.auditor}
    ),
    Permission.consent_write: frozenset({Role.clinician, Role.nurse, Role.agent}),
    Permission.flag_read: frozenset({Role.admin, Role.supervisor, Role.auditor}),
    Permission.flag_manage: frozenset({Role.admin}),
    # Decision-support KPIs: clinic leaders (admin, supervisor) and auditors; counts only.
    Permission.kpi_read: frozenset({Role.admin, Role.supervisor, Role.auditor}),
    # Data-subject requests (LGPD Art. 18): taken where the patient is met, tracked by admins
    # (who act as the data protection officer) and auditors; fulfilled (erasure, corrections
    # decided) by admins only. Legal holds are placed and lifted by admins.
    Permission.dsr_request: frozenset({Role.admin, Role.clinician, Role.nurse, Role.agent}),
    Permission.dsr_read: frozenset({Role.admin, Role.auditor}),
    Permission.dsr_fulfil: frozenset({Role.admin}),
    Permission.legal_hold_manage: frozenset({Role.admin}),
    # Retention: what the purge job did, for admins and auditors.
    Permission.retention_read: frozenset({Role.admin, Role.auditor}),
    # De-identified research extracts, honouring each patient's research consent.
    Permission.research_export: frozenset({Role.researcher}),
    # Demographics: the care team, billing (invoices) and the contact centre (appointments).
    Permission.patient_read: frozenset(
        {Role.clinician, Role.nurse, Role.pharmacist, Role.billing, Role.agent}
    ),
    Permission.patient_write: frozenset({Role.clinician, Role.nurse, Role.agent}),
    # Encounters, observations, conditions, allergies, medication list, prescriptions.
    Permission.clinical_read: frozenset({Role.clinician, Role.nurse, Role.pharmacist}),
    Permission.clinical_write: frozenset({Role.clinician, Role.nurse}),
    # Note text is the most sensitive part of the record: only who writes notes reads them.
    Permission.note_read: frozenset({Role.clinician, Role.nurse}),
    Permission.note_write: frozenset({Role.clinician, Role.nurse}),
    Permission.prescription_write: frozenset({Role.clinician}),
    # Bulk FHIR import (transaction/batch bundles): clinical data loaded on purpose.
    Permission.records_import: frozenset({Role.admin, Role.clinician}),
    Permission.cds_evaluate: frozenset({Role.clinician, Role.pharmacist}),
    Permission.cds_override: frozenset({Role.clinician}),
    Permission.cds_cosign: frozenset({Role.pharmacist}),
}


def permissions_for(roles: Iterable[Role | str]) -> frozenset[Permission]:
    held = {Role(r) for r in roles}
    return frozenset(p for p, allowed in MATRIX.items() if allowed & held)


def is_allowed(roles: Iterable[Role | str], permission: Permission) -> bool:
    return permission in permissions_for(roles)


def matrix_markdown() -> str:
    """The matrix as a Markdown table (rendered into docs/contexts/identity.md)."""
    roles = list(Role)
    lines = [
        "| permission | " + " | ".join(r.value for r in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for permission in Permission:
        allowed = MATRIX.get(permission, frozenset())
        cells = ["✓" if r in allowed else "" for r in roles]
        lines.append(f"| `{permission.value}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
