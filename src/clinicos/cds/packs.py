"""Rule pack lifecycle use cases (issue 5 point 2): the installation's catalogue of packaged
packs, clinical approval, per-organization activation with an optional stricter local overlay,
and the pack an organization's evaluations use."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select

from clinicos.cds import catalogue
from clinicos.cds.catalogue import CanonicalOverlay, PackagedPack
from clinicos.cds.engine import DEFAULT_PACK_VERSION, RulePack
from clinicos.cds.models import CdsPackActivation, CdsRulePack
from clinicos.governance import record_audit
from clinicos.kernel.errors import Conflict, ServiceUnavailable, ValidationFailed
from clinicos.platform.db.uow import SqlUnitOfWork

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

APPROVED = "approved"
UNAPPROVED = "unapproved"
APPROVAL_VOID = "approval void: file changed since approval"
MAX_REVIEWER = 200
_AUDIT_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


class RulePackNotApproved(Conflict):
    code = "rule_pack_not_approved"
    title = "Rule pack not approved"


class RulePackNotActive(ServiceUnavailable):
    code = "rule_pack_not_active"
    title = "No approved rule pack is active"


@dataclass(frozen=True)
class PackListing:
    """One catalogue entry: approval state and the organizations that use it."""

    id: str
    version: str
    title: str
    status: str
    reviewer: str | None
    approved_at: datetime | None
    content_sha256: str
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class RuleSummary:
    key: str
    severity: str
    policy: str
    source: str


@dataclass(frozen=True)
class PackDetail:
    listing: PackListing
    policy_document: str
    rules: tuple[RuleSummary, ...]


@dataclass(frozen=True)
class Activation:
    """What an organization evaluates with after ``activate_pack``."""

    organization_id: str
    pack_id: str
    pack_version: str
    effective_version: str
    approved: bool


def approval_status(row: CdsRulePack | None, packaged: PackagedPack) -> str:
    """An approval counts only for the exact file content the reviewer approved."""
    if row is None or row.approved_at is None:
        return UNAPPROVED
    if row.approved_sha256 != packaged.sha256:
        return APPROVAL_VOID
    return APPROVED


def audit_target(pack_id: str, version: str) -> str:
    return _AUDIT_ID_UNSAFE.sub("_", f"{pack_id}:{version}")


async def sync_catalogue(uow: SqlUnitOfWork) -> dict[tuple[str, str], CdsRulePack]:
    """Register packaged packs not yet known and refresh the hash of an edited file (whose
    recorded approval then no longer counts). Runs in the caller's transaction."""
    rows = {(r.id, r.version): r for r in (await uow.session.scalars(select(CdsRulePack))).all()}
    for key, packaged in catalogue.packaged_packs().items():
        row = rows.get(key)
        if row is None:
            row = CdsRulePack(
                id=packaged.id,
                version=packaged.version,
                title=packaged.title,
                content_sha256=packaged.sha256,
                registered_at=uow.clock.now(),
            )
            uow.session.add(row)
            rows[key] = row
        elif row.content_sha256 != packaged.sha256:
            row.content_sha256 = packaged.sha256
            row.title = packaged.title
    await uow.session.flush()
    return rows


async def _activations(
    uows: UnitOfWorkFor, organizations: Mapping[str, str]
) -> dict[tuple[str, str], list[str]]:
    """Organization labels by (pack id, base version); one tenant-scoped read per organization."""
    used: dict[tuple[str, str], list[str]] = {}
    for organization_id, label in sorted(organizations.items(), key=lambda item: item[1]):
        async with uows(organization_id) as uow:
            row = await uow.session.get(CdsPackActivation, organization_id)
        if row is not None:
            shown = label if row.overlay is None else f"{label} ({row.effective_version})"
            used.setdefault((row.pack_id, row.pack_version), []).append(shown)
    return used


def _listing(row: CdsRulePack, packaged: PackagedPack, used_by: list[str]) -> PackListing:
    return PackListing(
        id=row.id,
        version=row.version,
        title=row.title,
        status=approval_status(row, packaged),
        reviewer=row.reviewer,
        approved_at=row.approved_at,
        content_sha256=packaged.sha256,
        used_by=tuple(used_by),
    )


async def list_packs(
    uows: UnitOfWorkFor, organizations: Mapping[str, str] | None = None
) -> list[PackListing]:
    """Every packaged pack (registering new ones), its approval, and who uses it.

    ``organizations`` maps organization id → label (e.g. slug) for the "used by" column.
    """
    async with uows(None) as uow:
        rows = await sync_catalogue(uow)
        await uow.commit()
    used = await _activations(uows, organizations or {})
    packaged = catalogue.packaged_packs()
    return [
        _listing(rows[key], packaged[key], used.get(key, []))
        for key in sorted(packaged)
        if key in rows
    ]


async def show_pack(
    uows: UnitOfWorkFor,
    pack_id: str,
    version: str,
    organizations: Mapping[str, str] | None = None,
) -> PackDetail:
    """Metadata and a summary of every rule (key, severity, policy, source)."""
    packaged = catalogue.packaged_pack(pack_id, version)
    listing = next(
        p for p in await list_packs(uows, organizations) if (p.id, p.version) == (pack_id, version)
    )
    pack = catalogue.build_pack(packaged)
    rules = tuple(
        RuleSummary(key=key, severity=rule.severity, policy=rule.policy, source=rule.source)
        for key, rule in pack.rules.items()
    )
    return PackDetail(listing=listing, policy_document=pack.policy_document, rules=rules)


async def approve_pack(
    uows: UnitOfWorkFor, *, pack_id: str, version: str, reviewer: str, approved_by: str
) -> PackListing:
    """Record a clinician's approval of the packaged file as it is now (installation audit)."""
    reviewer = reviewer.strip()
    if not 1 <= len(reviewer) <= MAX_REVIEWER:
        raise ValidationFailed(f"--reviewer must be 1 to {MAX_REVIEWER} characters")
    packaged = catalogue.packaged_pack(pack_id, version)
    async with uows(None) as uow:
        row = (await sync_catalogue(uow))[(pack_id, version)]
        if approval_status(row, packaged) == APPROVED:
            raise Conflict(
                f"{pack_id} {version} is already approved by {row.reviewer} "
                f"on {row.approved_at:%Y-%m-%d}"
            )
        now = uow.clock.now()
        row.reviewer, row.approved_at, row.approved_by = reviewer, now, approved_by
        row.approved_sha256 = packaged.sha256
        await uow.session.flush()
        await record_audit(
            uow,
            organization_id=None,
            actor_type="system",
            actor_id=approved_by,
            action="cds.pack.approve",
            target_type="cds_rule_pack",
            target_id=audit_target(pack_id, version),
            purpose="operations",
        )
        await uow.commit()
    return _listing(row, packaged, [])


def _approve_hint(pack_id: str, version: str) -> str:
    return f'`clinicos cds packs approve {pack_id} {version} --reviewer "<name>"`'


def _require_activatable(
    status: str, packaged: PackagedPack, overlay: CanonicalOverlay | None
) -> None:
    """Production activates only approved content, and an overlay only with its own sign-off."""
    if status != APPROVED:
        raise RulePackNotApproved(
            f"refusing to activate {packaged.id} {packaged.version} in production: {status}; "
            f"approve it first with {_approve_hint(packaged.id, packaged.version)}"
        )
    if overlay is not None and not (overlay.data.get("reviewer") and overlay.data["approved_at"]):
        raise RulePackNotApproved(
            "refusing to activate an overlay in production without its own sign-off: "
            "set its reviewer and approved_at"
        )


async def activate_pack(
    uows: UnitOfWorkFor,
    *,
    organization_id: str,
    pack_id: str,
    version: str,
    overlay: Mapping[str, Any] | str | bytes | None,
    production: bool,
    activated_by: str,
) -> Activation:
    """Make one pack version (with an optional stricter overlay) the organization's pack."""
    packaged = catalogue.packaged_pack(pack_id, version)
    canonical = catalogue.canonical_overlay(overlay) if overlay is not None else None
    catalogue.build_pack(packaged, canonical)  # the engine validates the merge (stricter only)
    async with uows(None) as uow:
        status = approval_status((await sync_catalogue(uow))[(pack_id, version)], packaged)
        await uow.commit()
    if production:
        _require_activatable(status, packaged, canonical)
    effective = catalogue.effective_version(version, canonical.sha256 if canonical else None)
    async with uows(organization_id) as uow:
        row = await uow.session.get(CdsPackActivation, organization_id)
        if row is None:
            row = CdsPackActivation(organization_id=organization_id)
            uow.session.add(row)
        row.pack_id, row.pack_version, row.effective_version = pack_id, version, effective
        row.overlay = canonical.data if canonical else None
        row.overlay_sha256 = canonical.sha256 if canonical else None
        row.activated_at, row.activated_by = uow.clock.now(), activated_by
        await uow.session.flush()
        await record_audit(
            uow,
            organization_id=organization_id,
            actor_type="system",
            actor_id=activated_by,
            action="cds.pack.activate",
            target_type="cds_rule_pack",
            target_id=audit_target(pack_id, effective),
            purpose="operations",
        )
        await uow.commit()
    return Activation(organization_id, pack_id, version, effective, status == APPROVED)


_activations_t = cast(Table, CdsPackActivation.__table__)
# Built once, on the table's columns (a plain Core select: no ORM statement or result
# machinery): every evaluation runs it.
_ACTIVE_PACK = select(
    _activations_t.c.pack_id, _activations_t.c.pack_version, _activations_t.c.overlay_sha256
).where(_activations_t.c.organization_id == bindparam("organization_id"))


def _not_active(reason: str) -> RulePackNotActive:
    return RulePackNotActive(
        f"{reason}; an operator must approve a pack ("
        f"{_approve_hint('<id>', '<version>')}) and activate it for this organization "
        "(`clinicos cds packs activate <id> <version> --org <slug>`)"
    )


async def active_rule_pack(uow: SqlUnitOfWork, *, production: bool) -> RulePack:
    """The pack the unit of work's organization evaluates with (its overlay merged).

    Without an activation: the packaged default, except in production (503). In production
    the activated content must still carry its approval (an edited file has lost it).
    """
    organization_id = uow.organization_id
    row = None
    if organization_id:
        # Every evaluation reads this: the columns only, not the ORM row and its overlay
        # document, which is loaded only when this process has not parsed that overlay yet.
        row = (
            await uow.session.execute(_ACTIVE_PACK, {"organization_id": organization_id})
        ).first()
    if row is None:
        if production:
            raise _not_active("no approved rule pack is active for this organization")
        return catalogue.build_pack(catalogue.packaged_pack("doac", DEFAULT_PACK_VERSION))
    packaged = catalogue.packaged_packs().get((row.pack_id, row.pack_version))
    if packaged is None:
        raise _not_active(f"the active rule pack {row.pack_id} {row.pack_version} is not installed")
    if production:
        entry = await uow.session.get(CdsRulePack, (row.pack_id, row.pack_version))
        status = approval_status(entry, packaged)
        if status != APPROVED:
            raise _not_active(f"the active rule pack {row.pack_id} {row.pack_version} is {status}")
    if row.overlay_sha256 is None:
        return catalogue.build_pack(packaged)
    parsed = catalogue.parsed_pack(packaged, row.overlay_sha256)
    if parsed is not None:
        return parsed
    document = await uow.session.scalar(
        select(CdsPackActivation.overlay).where(
            CdsPackActivation.organization_id == organization_id
        )
    )
    overlay = None
    if document is not None:
        overlay = CanonicalOverlay(
            data=document,
            sha256=row.overlay_sha256,
            base_id=row.pack_id,
            base_version=row.pack_version,
        )
    return catalogue.build_pack(packaged, overlay)
