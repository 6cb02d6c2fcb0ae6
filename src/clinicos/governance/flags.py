"""Feature flags per organization: a known set of keys with defaults (``FLAGS``), stored
changes in ``feature_flag``, changed only by an administrator (audited, one event each), read
by services through :func:`flag_enabled` in their own transaction.

A key not in ``FLAGS`` is refused (422): a typo must not silently create a flag nobody reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from clinicos.governance.audit import record_audit
from clinicos.governance.events import FeatureFlagChanged
from clinicos.governance.models import FeatureFlag
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.platform.db.uow import SqlUnitOfWork

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]


@dataclass(frozen=True)
class FlagDefinition:
    key: str
    default: bool
    description: str


# Every flag the code reads, with its default. Defaults are off for anything that sends data
# outside the clinic or changes what clinicians see; on only for safeguards.
FLAGS: dict[str, FlagDefinition] = {
    flag.key: flag
    for flag in (
        FlagDefinition(
            "governance.consent.whatsapp.enabled",
            False,
            "Ask for and record WhatsApp messaging consent (opt-in) for this clinic's patients.",
        ),
        FlagDefinition(
            "rlhf.assurance.capture.enabled",
            False,
            "Capture clinicians' overrides and feedback as assurance data for rule review.",
        ),
    )
}


@dataclass(frozen=True)
class FlagView:
    key: str
    enabled: bool
    default: bool
    description: str
    updated_by: str | None
    updated_at: datetime | None


def _definition(key: str) -> FlagDefinition:
    definition = FLAGS.get(key)
    if definition is None:
        raise ValidationFailed(
            "invalid fields: key",
            errors=(FieldError(("key",), f"one of {sorted(FLAGS)}", "enum"),),
        )
    return definition


def _view(definition: FlagDefinition, row: FeatureFlag | None) -> FlagView:
    return FlagView(
        key=definition.key,
        enabled=definition.default if row is None else row.enabled,
        default=definition.default,
        description=definition.description,
        updated_by=None if row is None else row.updated_by,
        updated_at=None if row is None else row.updated_at,
    )


async def flag_enabled(uow: SqlUnitOfWork, organization_id: str, key: str) -> bool:
    """Whether ``key`` is on for the organization (its default when never changed)."""
    definition = _definition(key)
    row = await uow.session.get(FeatureFlag, (organization_id, key))
    return definition.default if row is None else row.enabled


async def list_flags(*, uows: UnitOfWorkFor, actor: Actor) -> list[FlagView]:
    async with uows(actor.organization_id) as uow:
        rows = {
            r.key: r
            for r in await uow.session.scalars(
                select(FeatureFlag).where(FeatureFlag.organization_id == actor.organization_id)
            )
        }
    return [_view(d, rows.get(d.key)) for d in FLAGS.values()]


async def set_flag(*, uows: UnitOfWorkFor, actor: Actor, key: str, enabled: bool) -> FlagView:
    """Turn a flag on or off for the actor's organization: the row, one audit entry and one
    event in one transaction (a call that changes nothing writes nothing)."""
    definition = _definition(key)
    async with uows(actor.organization_id) as uow:
        row = await uow.session.get(FeatureFlag, (actor.organization_id, key))
        current = definition.default if row is None else row.enabled
        if current == enabled and row is not None:
            return _view(definition, row)
        now = uow.clock.now()
        if row is None:
            row = FeatureFlag(organization_id=actor.organization_id, key=key)
            uow.session.add(row)
        row.enabled = enabled
        row.updated_by = actor.user_id
        row.updated_at = now
        await uow.session.flush()
        await record_audit(
            uow,
            organization_id=actor.organization_id,
            actor_type="user",
            actor_id=actor.user_id,
            action="flag.enable" if enabled else "flag.disable",
            target_type="feature_flag",
            target_id=key,
            purpose="administration",
            request_id=actor.request_id,
        )
        uow.record(
            FeatureFlagChanged(
                organization_id=actor.organization_id,
                key=key,
                enabled=enabled,
                changed_by=actor.user_id,
            )
        )
        await uow.commit()
    return _view(definition, row)
