"""CDS Hooks use cases: check the anticoagulant drafts of an order hook (each check recorded as
an evaluation, with its cards, in one transaction per call), and record card feedback.

Who acts: a clinicos user (the console's own calls) or a registered CDS client, whose Actor
carries the client's id (see auth.client_actor and docs/contexts/cds-hooks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from clinicos.cds.engine import Facts, Order, RulePack
from clinicos.cds.hooks import cards as card_rules
from clinicos.cds.hooks import mapping
from clinicos.cds.hooks.events import HookFeedbackRecorded
from clinicos.cds.hooks.models import CdsHooksCard
from clinicos.cds.hooks.schemas import FeedbackEntry, FeedbackRequest, HookRequest
from clinicos.cds.models import CdsOverride
from clinicos.cds.overrides import (
    OTHER,
    REASON_SYSTEM,
    OverrideExists,
    OverridePolicy,
    OverrideReason,
    record_override,
)
from clinicos.cds.packs import active_rule_pack
from clinicos.cds.services import evaluate_inline
from clinicos.governance import record_audit
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import BadRequest, Conflict, FieldError, NotFound, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

AUDIT_FEEDBACK = "cds.hooks_feedback"
AUDIT_TARGET = "cds_hooks_card"
ACCEPTED = "accepted"
OVERRIDDEN = "overridden"


class FeedbackExists(Conflict):
    code = "cds_hooks_feedback_exists"
    title = "Feedback for this card was already recorded"


@dataclass(frozen=True)
class HookService:
    """One published CDS service: its id and the single hook it answers (CDS Hooks 2.0)."""

    id: str
    hook: str


@dataclass(frozen=True)
class FeedbackResult:
    card: str
    outcome: str
    override_id: str | None
    override_status: str | None


def _bad_request(loc: tuple[str | int, ...], message: str) -> BadRequest:
    name = ".".join(str(p) for p in ("body", *loc))
    return BadRequest(
        f"malformed CDS Hooks request: {name}",
        code="malformed_cds_hooks_request",
        data={"errors": [{"field": name, "message": message, "type": "value_error"}]},
    )


async def run_order_hook(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    client_id: str | None,
    service: HookService,
    request: HookRequest,
    terminology: mapping.Terminology,
    override_reasons: Sequence[OverrideReason],
    language: str,
    now: datetime,
    production: bool,
) -> list[dict[str, Any]]:
    """The cards for one order hook: one per reason of each anticoagulant draft's evaluation,
    a "not checkable" card for a draft the engine cannot read, none for other drugs.

    One unit of work per call: every evaluation's governance record (row, audit entry, event;
    ``clinicos.cds.services.evaluate_inline``) and every card (so feedback can find it) commit
    together, or — on any failure, an engine exception included (a 500, never a PASS) —
    nothing does.
    """
    if request.hook != service.hook:
        raise _bad_request(("hook",), f"this service answers '{service.hook}' only")
    context = request.context
    try:
        drafts = mapping.draft_orders(context.draftOrders, terminology)
        chosen = [d for d in mapping.selected(drafts, context.selections) if d.drug is not None]
        if not chosen:
            return []  # no anticoagulant ordered: nothing for this service to say
        draft_ids = frozenset(str(d.resource.get("id")) for d in drafts if d.resource.get("id"))
        patient = mapping.patient_facts(
            request.prefetch,
            patient_id=context.patientId,
            as_of=now.date(),
            terminology=terminology,
            draft_ids=draft_ids,
        )
    except mapping.HookInputError as exc:
        raise _bad_request(exc.loc, exc.message) from None
    drafted: list[tuple[card_rules.CardDraft, str | None, str | None]] = []
    evaluated = False
    async with uows(actor.organization_id) as uow:
        pack: RulePack | None = None  # read once, on the first draft the engine checks
        for draft in chosen:
            unreadable = patient.unreadable + draft.unreadable
            if unreadable or draft.order is None:
                card = card_rules.not_checkable_card(
                    fields=unreadable,
                    draft_reference=draft.reference,
                    language=language,
                    new_uuid=new_id,
                )
                drafted.append((card, None, None))
                continue
            others = tuple(name for d in drafts if d is not draft for name in d.names)
            facts = Facts.model_validate(
                patient.facts | {"other_medications": patient.facts["other_medications"] + others}
            )
            pack = pack or await active_rule_pack(uow, production=production)
            recorded = await evaluate_inline(
                uow,
                actor=actor,
                facts=facts,
                order=Order.model_validate(draft.order),
                as_of=now,
                rule_pack=pack,
            )
            evaluated = True
            outcome = recorded.evaluation.outcome
            drafted.extend(
                (card, recorded.evaluation_id, outcome)
                for card in card_rules.reason_cards(
                    evaluation=recorded.evaluation,
                    evaluation_id=recorded.evaluation_id,
                    draft=draft.resource,
                    draft_reference=draft.reference,
                    language=language,
                    override_reasons=override_reasons,
                    new_uuid=new_id,
                )
            )
        if evaluated and patient.unresolved:
            card = card_rules.prefetch_incomplete_card(
                keys=patient.unresolved, language=language, new_uuid=new_id
            )
            drafted.append((card, None, None))
        _add_cards(
            uow,
            actor=actor,
            client_id=client_id,
            service=service,
            request=request,
            drafted=drafted,
            now=now,
        )
        await uow.commit()
    return [card.body for card, _, _ in drafted]


def _add_cards(
    uow: SqlUnitOfWork,
    *,
    actor: Actor,
    client_id: str | None,
    service: HookService,
    request: HookRequest,
    drafted: Sequence[tuple[card_rules.CardDraft, str | None, str | None]],
    now: datetime,
) -> None:
    """Stage the cards in the call's unit of work (committed with the evaluations)."""
    for card, evaluation_id, outcome in drafted:
        uow.session.add(
            CdsHooksCard(
                id=card.uuid,
                organization_id=actor.organization_id,
                evaluation_id=evaluation_id,
                evaluation_outcome=outcome,
                reason_key=card.reason_key,
                severity=card.severity,
                service_id=service.id,
                hook_instance=request.hookInstance,
                client_id=client_id,
                acting_for=request.context.userId,
                created_by=actor.user_id,
                created_at=now,
            )
        )


# -- feedback ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Checked:
    entry: FeedbackEntry
    reason_code: str | None
    comment: str | None


def _invalid(index: int, *path: str, message: str) -> ValidationFailed:
    loc: tuple[str | int, ...] = ("body", "feedback", index, *path)
    return ValidationFailed(
        "invalid fields: " + ".".join(str(p) for p in loc),
        errors=(FieldError(loc=loc, message=message),),
    )


def _checked_entry(index: int, entry: FeedbackEntry, policy: OverridePolicy) -> _Checked:
    """No override without a reason, ever (issue 5 point 5): 422 naming the field."""
    if entry.outcome != OVERRIDDEN:
        return _Checked(entry, None, None)
    reason = entry.overrideReason.reason if entry.overrideReason is not None else None
    if reason is None:
        raise _invalid(index, "overrideReason", message="an override needs a reason")
    if reason.system not in (None, REASON_SYSTEM):
        raise _invalid(
            index, "overrideReason", "reason", "system", message=f"must be {REASON_SYSTEM}"
        )
    if reason.code not in policy.reason_codes:
        raise _invalid(
            index,
            "overrideReason",
            "reason",
            "code",
            message="must be one of: " + ", ".join(policy.reason_codes),
        )
    assert entry.overrideReason is not None  # reason came from it
    comment = (entry.overrideReason.userComment or "").strip() or None
    if reason.code == OTHER and comment is None:
        raise _invalid(
            index, "overrideReason", "userComment", message="required when the reason is other"
        )
    return _Checked(entry, reason.code, comment)


async def record_feedback(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    client_id: str | None,
    service: HookService,
    request: FeedbackRequest,
    policy: OverridePolicy,
    phi: PhiKeyring,
) -> list[FeedbackResult]:
    """Record what the user did with each card, as governance records.

    Everything is checked before anything is written: an unknown card (or another tenant's,
    another client's, another service's) is a 404; a second feedback for a card a 409; an
    override without a valid reason a 422. An override of a BLOCK/WARN evaluation goes through
    ``record_override`` (a BLOCK one then awaits its pharmacist co-sign as usual); other
    feedback is a ``cds.HookFeedbackRecorded`` event with its audit entry.
    """
    checked = [_checked_entry(i, entry, policy) for i, entry in enumerate(request.feedback)]
    if any(c.reason_code is not None for c in checked):
        actor.require("cds:override")
    ids = [c.entry.card_id for c in checked]
    if len(set(ids)) != len(ids):
        raise FeedbackExists("each card may appear once in a feedback request")
    async with uows(actor.organization_id) as uow:
        rows = (
            await uow.session.scalars(
                select(CdsHooksCard).where(
                    CdsHooksCard.id.in_(ids),
                    CdsHooksCard.organization_id == actor.organization_id,
                )
            )
        ).all()
    cards = {row.id: row for row in rows}
    for card_id in ids:
        row = cards.get(card_id)
        if row is None or row.service_id != service.id or row.client_id != client_id:
            raise NotFound("no such card")
        if row.feedback_outcome is not None:
            raise FeedbackExists("feedback for this card was already recorded")
    results = []
    for item in checked:
        card = cards[item.entry.card_id]
        results.append(
            await _record_one(
                uows=uows,
                actor=actor,
                client_id=client_id,
                card=card,
                item=item,
                policy=policy,
                phi=phi,
            )
        )
    return results


async def _record_one(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    client_id: str | None,
    card: CdsHooksCard,
    item: _Checked,
    policy: OverridePolicy,
    phi: PhiKeyring,
) -> FeedbackResult:
    override_id: str | None = None
    status: str | None = None
    announced = False
    overridable = (
        card.evaluation_id is not None
        and card.severity in card_rules.OVERRIDABLE
        and card.evaluation_outcome in card_rules.OVERRIDABLE
    )
    if item.reason_code is not None and overridable:
        assert card.evaluation_id is not None  # overridable says so
        try:
            view = await record_override(
                uows=uows,
                actor=actor,
                policy=policy,
                evaluation_id=card.evaluation_id,
                reason_code=item.reason_code,
                comment=item.comment,
                phi=phi,
            )
            override_id, status, announced = view.override_id, view.status, True
        except OverrideExists:
            # Another card of the same evaluation was overridden first: one override covers
            # the evaluation; this card's feedback is recorded against it.
            override_id, status = await _existing_override(uows, actor, card.evaluation_id)
    await _mark_card(
        uows=uows,
        actor=actor,
        client_id=client_id,
        card_id=card.id,
        item=item,
        override_id=override_id,
        announce=not announced,
        phi=phi,
    )
    return FeedbackResult(card.id, item.entry.outcome, override_id, status)


async def _existing_override(
    uows: UnitOfWorkFor, actor: Actor, evaluation_id: str
) -> tuple[str | None, str | None]:
    async with uows(actor.organization_id) as uow:
        row = (
            await uow.session.execute(
                select(CdsOverride.id, CdsOverride.status).where(
                    CdsOverride.evaluation_id == evaluation_id
                )
            )
        ).one_or_none()
    return (row.id, row.status) if row is not None else (None, None)


async def _mark_card(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    client_id: str | None,
    card_id: str,
    item: _Checked,
    override_id: str | None,
    announce: bool,
    phi: PhiKeyring,
) -> None:
    """Store the feedback on the card; unless ``record_override`` already wrote this path's
    audit entry and governance event, write them here in the same transaction."""
    async with uows(actor.organization_id) as uow:
        row = await uow.session.get(CdsHooksCard, card_id, with_for_update=True)
        if row is None:
            raise NotFound("no such card")
        if row.feedback_outcome is not None:  # a concurrent feedback won
            raise FeedbackExists("feedback for this card was already recorded")
        row.feedback_outcome = item.entry.outcome
        row.feedback_at = uow.clock.now()
        row.override_reason_code = item.reason_code
        row.override_id = override_id
        if announce and item.comment is not None:
            # Free text may name the patient: sealed to this cell; never logged or emitted.
            row.override_comment = phi.encrypt(
                item.comment,
                organization_id=row.organization_id,
                table="cds_hooks_card",
                column="override_comment",
                row_id=row.id,
            )
        await uow.session.flush()
        if announce:
            await _audit_feedback(uow, actor, row.id)
            uow.record(
                HookFeedbackRecorded(
                    organization_id=row.organization_id,
                    card_id=row.id,
                    evaluation_id=row.evaluation_id,
                    reason_key=row.reason_key,
                    severity=row.severity,
                    outcome=item.entry.outcome,
                    reason_code=item.reason_code,
                    override_id=override_id,
                    recorded_by=actor.user_id,
                    client_id=client_id,
                )
            )
        await uow.commit()


async def _audit_feedback(uow: SqlUnitOfWork, actor: Actor, card_id: str) -> None:
    # A CDS client is audited as a service named by its id, as its evaluations and overrides
    # are (Actor.actor_type, hooks/auth.py); a clinicos user's token as that user.
    await record_audit(
        uow,
        organization_id=actor.organization_id,
        actor_type=actor.actor_type,
        actor_id=actor.user_id,
        action=AUDIT_FEEDBACK,
        target_type=AUDIT_TARGET,
        target_id=card_id,
        purpose="treatment",
        outcome="success",
        request_id=actor.request_id,
    )
