"""Console pages: the clinic's audit trail — filtered, newest first, paged by sequence number —
and the verification of its hash chain. As on the API (governance/routes.py), showing the trail
appends an ``audit.read`` entry and a verification an ``audit.verify`` entry, each in the same
transaction as what it records.

Filters are dates, codes and opaque ids (patient ids included, never names), so they travel
in the query string; the listing is governance's ``list_audit_events``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from clinicos.console import i18n
from clinicos.console.session import COOKIE_PATH
from clinicos.console.web import Page, page
from clinicos.governance import (
    AuditEvent,
    ChainReport,
    list_audit_events,
    record_audit,
    verify_audit_chain,
)
from clinicos.identity import Permission

router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False)
AUDIT_PATH = COOKIE_PATH + "/audit"
PAGE_SIZE = 50
VERIFY_ACTION = "audit.verify"
OUTCOMES = ("success", "denied", "failure")
FILTER_NAMES = ("from", "to", "action", "actor_id", "target_type", "target_id", "outcome")
# The shapes governance accepts (governance/audit/validation.py): checked here first, so a bad
# filter is an error beside its field rather than a refusal from the query.
_CODE = re.compile(r"^[a-z0-9_.:-]{1,100}$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_SEQ = re.compile(r"^[0-9]{1,19}$")
_MAX_SEQ = 2**63 - 1


@dataclass
class AuditFilters:
    """The filters as typed (kept on errors) and, when valid, what the query needs."""

    typed: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    before_seq: int | None = None

    def value(self, name: str) -> str | None:
        return self.typed.get(name) or None

    def query(self, **extra: str) -> dict[str, str]:
        return {k: v for k, v in {**self.typed, **extra}.items() if v}


def parse_filters(source: Mapping[str, str], timezone: str) -> AuditFilters:
    """Read the filter fields; dates are whole local days of the clinic (``to`` included)."""
    _ = i18n.gettext
    typed = {name: source.get(name, "").strip()[:200] for name in FILTER_NAMES}
    filters = AuditFilters(typed=typed)
    zone = ZoneInfo(timezone)
    start = _day(filters, "from")
    end = _day(filters, "to")
    if start is not None:
        filters.occurred_from = datetime.combine(start, time(0), tzinfo=zone)
    if end is not None:
        filters.occurred_to = datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone)
    if start is not None and end is not None and end < start:
        filters.errors["to"] = _("The end date must not be before the start date.")
    for name in ("action", "target_type"):
        if typed[name] and not _CODE.fullmatch(typed[name]):
            filters.errors[name] = _(
                "Use a code such as cds.evaluate: lower-case letters, digits and . _ : -"
            )
    for name in ("actor_id", "target_id"):
        if typed[name] and not _IDENTIFIER.fullmatch(typed[name]):
            filters.errors[name] = _("Use an id: letters, digits and . _ : - without spaces.")
    if typed["outcome"] and typed["outcome"] not in OUTCOMES:
        filters.errors["outcome"] = _("Choose an outcome from the list.")
    raw_before = source.get("before_seq", "").strip()[:20]
    if raw_before:
        if _SEQ.fullmatch(raw_before) and 1 <= int(raw_before) <= _MAX_SEQ:
            filters.before_seq = int(raw_before)
        else:
            filters.errors["form"] = _(
                "This page link is not valid. Start again from the newest events."
            )
    return filters


def _day(filters: AuditFilters, name: str) -> date | None:
    raw = filters.typed[name]
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        filters.errors[name] = i18n.gettext("Enter a date as YYYY-MM-DD.")
        return None
    if day >= date.max - timedelta(days=1):
        filters.errors[name] = i18n.gettext("This date is out of range.")
        return None
    return day


@dataclass(frozen=True)
class Verification:
    """A verification just run, as the page states it."""

    report: ChainReport
    checked_at: datetime

    @property
    def through_seq(self) -> int:
        return self.report.purged_through_seq + self.report.rows_checked


def chain_problem(reason: str | None) -> str:
    """What a broken chain's reason means, in the user's language (the verifier's English
    reason is shown beside it for support)."""
    _ = i18n.gettext
    text = reason or ""
    if "does not match its hash" in text:
        return _("This row was changed after it was written.")
    if "is missing (deleted)" in text:
        return _("This row was deleted.")
    if "prev_hash does not match" in text:
        return _("This row does not follow the one before it: rows were reordered or replaced.")
    if "(truncated)" in text:
        return _("The rows from here on were deleted (the end of the chain was cut off).")
    if "head is missing" in text:
        return _("The record of the chain's last row is missing.")
    if "head's hash" in text:
        return _("The last row does not match the record of the chain's end.")
    if "beyond the chain head" in text:
        return _("Rows were written around the audit service.")
    return _("The chain does not verify.")


@router.get("/audit")
async def audit_trail(p: Annotated[Page, Depends(page(Permission.audit_read))]) -> Response:
    filters = parse_filters(p.request.query_params, p.formatter.timezone)
    return await _trail(p, filters, None)


@router.post("/audit/verify")
async def verify_now(p: Annotated[Page, Depends(page(Permission.audit_verify))]) -> Response:
    """Re-hash the clinic's chain now and show the result above the trail (the filters in use
    come back as hidden fields)."""
    org = p.actor.organization_id
    async with p.container.uow(org) as uow:
        report = await verify_audit_chain(uow, organization_id=org)
        await record_audit(
            uow,
            organization_id=org,
            actor_type="user",
            actor_id=p.actor.user_id,
            action=VERIFY_ACTION,
            target_type="audit_trail",
            target_id=org,
            purpose="audit",
            outcome="success" if report.ok else "failure",
            request_id=p.actor.request_id,
        )
        await uow.commit()
    checked = Verification(report=report, checked_at=p.container.clock.now())
    filters = parse_filters(p.form, p.formatter.timezone)
    filters.before_seq = None  # a verification shows the newest events
    return await _trail(p, filters, checked)


@router.get("/audit/verify")
async def verify_address(p: Annotated[Page, Depends(page(Permission.audit_read))]) -> Response:
    """The result page's address opened again (a bookmark, the history): back to the trail,
    never a verification by a GET."""
    return p.redirect(AUDIT_PATH)


async def _trail(p: Page, filters: AuditFilters, checked: Verification | None) -> Response:
    org = p.actor.organization_id
    rows: list[AuditEvent] = []
    last_check: AuditEvent | None = None
    async with p.container.uow(org) as uow:
        if not filters.errors:
            rows = await list_audit_events(
                uow.session,
                organization_id=org,
                actor_id=filters.value("actor_id"),
                action=filters.value("action"),
                target_type=filters.value("target_type"),
                target_id=filters.value("target_id"),
                outcome=filters.value("outcome"),
                occurred_from=filters.occurred_from,
                occurred_to=filters.occurred_to,
                limit=PAGE_SIZE,
                before_seq=filters.before_seq,
            )
        if checked is None and p.can(Permission.audit_verify):
            found = await list_audit_events(
                uow.session, organization_id=org, action=VERIFY_ACTION, limit=1
            )
            last_check = found[0] if found else None
        if not filters.errors:
            # Reading the audit trail is itself audited (as GET /api/v1/audit).
            await record_audit(
                uow,
                organization_id=org,
                actor_type="user",
                actor_id=p.actor.user_id,
                action="audit.read",
                target_type="audit_trail",
                target_id=org,
                purpose="audit",
                outcome="success",
                request_id=p.actor.request_id,
            )
            await uow.commit()
    return p.render(
        "audit/trail.html",
        status=422 if filters.errors else 200,
        filters=filters,
        errors=filters.errors,
        rows=rows,
        checked=checked,
        problem=chain_problem(checked.report.reason) if checked and not checked.report.ok else None,
        last_check=last_check,
        outcomes=_outcome_labels(),
        actor_types=_actor_type_labels(),
        **_pager(filters, rows),
    )


def _pager(filters: AuditFilters, rows: list[AuditEvent]) -> dict[str, Any]:
    older = None
    if len(rows) == PAGE_SIZE:
        older = AUDIT_PATH + "?" + urlencode(filters.query(before_seq=str(rows[-1].seq)))
    newest = AUDIT_PATH + "?" + urlencode(filters.query()) if filters.before_seq else None
    return {"older_href": older, "newest_href": newest}


def _outcome_labels() -> dict[str, str]:
    _ = i18n.gettext
    return {"success": _("Success"), "denied": _("Denied"), "failure": _("Failure")}


def _actor_type_labels() -> dict[str, str]:
    _ = i18n.gettext
    return {
        "user": _("User"),
        "service": _("Service"),
        "system": _("System"),
        "anonymous": _("Anonymous"),
    }
