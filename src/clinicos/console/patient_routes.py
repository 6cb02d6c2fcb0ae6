"""Console pages for patients: search (criteria posted, never in a URL), the newest-first list
paged by an opaque cursor, and the chart.

Every page reads through records' own services, the ones the JSON API calls: a chart is
``get_patient``, ``list_observations``, ``list_conditions``, ``list_allergies``,
``list_medications``, ``list_prescriptions`` and ``list_notes`` — so opening it writes exactly the
audit entries those API reads write (one per call, each naming the patient), and a patient of
another clinic, or an id that names nothing, is the same 404."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from clinicos.cds import RulePackNotActive, active_rule_pack
from clinicos.console import i18n
from clinicos.console.session import COOKIE_PATH
from clinicos.console.web import Page, page
from clinicos.identity import Permission
from clinicos.records import (
    DIASTOLIC,
    LOINC,
    RELEASED,
    SYSTOLIC,
    InvalidCursor,
    NoteView,
    ObservationFilter,
    PatientNotFound,
    PatientPage,
    PatientSearch,
    get_note,
    get_patient,
    list_allergies,
    list_conditions,
    list_medications,
    list_notes,
    list_observations,
    list_prescriptions,
    search_patients,
)

router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False)

Reader = Annotated[Page, Depends(page(Permission.patient_read))]

LIST_SIZE = 20
ENTRY_PAGE = 100  # records' page limit: a chart section shows up to this many entries
NOTES_PAGE = 20
# Row ids are UUIDs; FHIR imports may keep a client id ([A-Za-z0-9-.]{1,64}). Anything else
# names no patient: answer 404 before it reaches a query.
PATIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,63}")
CURSOR = re.compile(r"[A-Za-z0-9_\-]{1,200}")
# The criteria records' search accepts (exact match through blind indexes) and their limits
# (records.schemas.PatientSearchBody).
SEARCH_FIELDS: dict[str, int] = {"mrn": 64, "name": 201, "family_name": 100, "national_id": 32}

WEIGHT, HEIGHT, BP_PANEL = "29463-7", "8302-2", "85354-9"
CREATININE_MASS, CREATININE_MOLES = "2160-0", "14682-9"
INR_CODES = ("6301-6", "34714-6")
# The results decision support doses anticoagulants with: always listed, even when missing.
DOSING_CODES = (WEIGHT, CREATININE_MASS, CREATININE_MOLES)
UNIT_TEXT = {"umol/L": "µmol/L", "mm[Hg]": "mmHg", "{INR}": "", "[lb_av]": "lb"}


# -- patients: list and search ------------------------------------------------------------------


@router.get("/patients")
async def patient_list(p: Reader, cursor: str | None = None) -> Response:
    """Every patient, newest registration first; ``cursor`` (opaque: a time and a row id, no
    PHI) continues after the previous page."""
    errors: dict[str, str] = {}
    status = 200
    if cursor is not None and not CURSOR.fullmatch(cursor):
        cursor, status = None, 400
    try:
        result = await _search(p, PatientSearch(), cursor)
    except InvalidCursor:
        cursor, status = None, 400
        result = await _search(p, PatientSearch(), None)
    if status == 400:
        errors["form"] = i18n.gettext(
            "That page link is not valid any more. Showing the newest patients."
        )
    return _list_page(p, result, form={}, errors=errors, searched=False, status=status)


@router.post("/patients/search")
async def patient_search(p: Reader) -> Response:
    """Exact-match search; the criteria travel in the form body (they identify people)."""
    form = {name: str(p.form.get(name, "")).strip() for name in SEARCH_FIELDS}
    errors: dict[str, str] = {}
    for name, limit in SEARCH_FIELDS.items():
        if len(form[name]) > limit:
            errors[name] = i18n.gettext("At most %(limit)s characters.", limit=limit)
    if not any(form.values()):
        errors["form"] = i18n.gettext(
            "Enter at least one of: MRN, full name, family name or national id."
        )
    if errors:
        return _list_page(p, None, form=form, errors=errors, searched=True, status=422)
    criteria = PatientSearch(
        mrn=form["mrn"] or None,
        name=form["name"] or None,
        family_name=form["family_name"] or None,
        national_id=form["national_id"] or None,
    )
    cursor = str(p.form.get("cursor", "")) or None
    try:
        if cursor is not None and not CURSOR.fullmatch(cursor):
            raise InvalidCursor("form field 'cursor' is not a cursor this console issued")
        result = await _search(p, criteria, cursor)
    except InvalidCursor:
        errors["form"] = i18n.gettext("That page is not valid any more. Search again.")
        return _list_page(p, None, form=form, errors=errors, searched=True, status=400)
    return _list_page(p, result, form=form, errors=errors, searched=True, cursor=cursor)


async def _search(p: Page, criteria: PatientSearch, cursor: str | None) -> PatientPage:
    c = p.container
    return await search_patients(
        uows=c.uow, phi=c.phi, actor=p.actor, criteria=criteria, limit=LIST_SIZE, cursor=cursor
    )


def _list_page(
    p: Page,
    result: PatientPage | None,
    *,
    form: dict[str, str],
    errors: dict[str, str],
    searched: bool,
    cursor: str | None = None,
    status: int = 200,
) -> Response:
    today = _today(p)
    ages = {view.id: age_on(view.birth_date, today) for view in result.items} if result else {}
    return p.render(
        "patients/list.html",
        status=status,
        result=result,
        ages=ages,
        form=form,
        errors=errors,
        searched=searched,
        cursor=cursor,
        limits=SEARCH_FIELDS,
    )


# -- the chart ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    """How old a dosing result may be (days, inclusive) under the clinic's active DOAC rule
    pack — the windows the order check applies (doac-rules.md §0.4, clinicos local policy)."""

    pack: str
    version: str
    days: dict[str, int]


@dataclass(frozen=True)
class Result:
    """The latest released result of one code, as the chart shows it."""

    code: str
    label: str
    value: str
    status: str | None = None
    measured_at: datetime | None = None
    days_old: int | None = None
    window: int | None = None  # days a DOAC order accepts it for, if the pack sets one

    @property
    def stale(self) -> bool | None:
        """True past the window, False within it, None when no window applies."""
        if self.window is None or self.days_old is None:
            return None
        return self.days_old > self.window


@dataclass
class NoteThread:
    note: NoteView
    addenda: list[NoteThread] = field(default_factory=list)


@dataclass(frozen=True)
class Clinical:
    results: list[Result]
    conditions: Sequence[Any]
    allergies: Sequence[Any]
    medications: list[tuple[str, Any]]  # ("statement" | "prescription", row)
    prescriptions: Sequence[Any]
    freshness: Freshness | None
    truncated: list[str]


@router.get("/patients/{patient_id}")
async def patient_chart(p: Reader, patient_id: str, notes: str | None = None) -> Response:
    if not PATIENT_ID.fullmatch(patient_id):
        raise PatientNotFound("no such patient in this organization")
    c = p.container
    patient = await get_patient(uows=c.uow, phi=c.phi, actor=p.actor, patient_id=patient_id)
    clinical = await _clinical(p, patient.id) if p.can(Permission.clinical_read) else None
    threads: list[NoteThread] | None = None
    notes_next: str | None = None
    notes_notice = False
    if p.can(Permission.note_read):
        if notes is not None and not CURSOR.fullmatch(notes):
            notes, notes_notice = None, True
        try:
            threads, notes_next = await _notes(p, patient.id, notes)
        except InvalidCursor:
            notes, notes_notice = None, True
            threads, notes_next = await _notes(p, patient.id, None)
    return p.render(
        "patients/chart.html",
        patient=patient,
        age=age_on(patient.birth_date, _today(p)),
        clinical=clinical,
        threads=threads,
        notes_cursor=notes,
        notes_next=notes_next,
        notes_notice=notes_notice,
        can_order=p.can(Permission.prescription_write) or p.can(Permission.cds_evaluate),
    )


async def _clinical(p: Page, patient_id: str) -> Clinical:
    c = p.container
    scope: dict[str, Any] = {"uows": c.uow, "actor": p.actor, "patient_id": patient_id}
    truncated: list[str] = []
    observations = await list_observations(**scope, limit=ENTRY_PAGE)
    latest = latest_released(observations.items)
    if observations.next_cursor is not None:
        # A long record: the page holds the newest 100 results. The dosing results must not be
        # missed for that, so look each one up by code (one more audited read each).
        for code in DOSING_CODES:
            if (LOINC, code) not in latest:
                older = await list_observations(
                    **scope, criteria=ObservationFilter(code=code), limit=ENTRY_PAGE
                )
                latest.update(
                    (key, row)
                    for key, row in latest_released(older.items).items()
                    if key == (LOINC, code)
                )
        truncated.append("results")
    conditions = await list_conditions(**scope, limit=ENTRY_PAGE)
    allergies = await list_allergies(**scope, limit=ENTRY_PAGE)
    statements = await list_medications(**scope, status="active", limit=ENTRY_PAGE)
    prescriptions = await list_prescriptions(**scope, limit=ENTRY_PAGE)
    active_orders = [row for row in prescriptions.items if row.status == "active"]
    if prescriptions.next_cursor is not None:
        active_orders = list(
            (await list_prescriptions(**scope, status="active", limit=ENTRY_PAGE)).items
        )
    for name, entries in (
        ("conditions", conditions),
        ("allergies", allergies),
        ("medications", statements),
        ("prescriptions", prescriptions),
    ):
        if entries.next_cursor is not None:
            truncated.append(name)
    freshness = await _freshness(p)
    return Clinical(
        results=chart_results(latest, freshness, p, now=c.clock.now()),
        conditions=conditions.items,
        allergies=allergies.items,
        medications=active_medications(statements.items, active_orders),
        prescriptions=prescriptions.items,
        freshness=freshness,
        truncated=truncated,
    )


async def _freshness(p: Page) -> Freshness | None:
    """The clinic's data-age windows for anticoagulant dosing, from its active DOAC rule pack
    (so the chart calls stale exactly what the order check will); None without an active pack
    (production refuses to evaluate then, and the chart does not guess)."""
    c = p.container
    async with c.uow(p.actor.organization_id) as uow:
        try:
            pack = await active_rule_pack(uow, production=c.settings.env.value == "production")
        except RulePackNotActive:
            return None
    thresholds = pack.thresholds
    creatinine = int(thresholds.creatinine_max_age_days.value)
    return Freshness(
        pack=pack.id,
        version=pack.version,
        days={
            WEIGHT: int(thresholds.weight_max_age_days.value),
            CREATININE_MASS: creatinine,
            CREATININE_MOLES: creatinine,
        },
    )


def latest_released(rows: Iterable[Any]) -> dict[tuple[str, str], Any]:
    """The newest released (final, amended, corrected) result per (system, code) of rows that
    come newest measurement first — what decision support would read."""
    found: dict[tuple[str, str], Any] = {}
    for row in rows:
        if row.status in RELEASED:
            found.setdefault((row.code_system, row.code), row)
    return found


def _labels() -> dict[str, str]:
    return {
        WEIGHT: i18n.gettext("Body weight"),
        CREATININE_MASS: i18n.gettext("Serum creatinine"),
        CREATININE_MOLES: i18n.gettext("Serum creatinine"),
        HEIGHT: i18n.gettext("Body height"),
        BP_PANEL: i18n.gettext("Blood pressure"),
        **{code: i18n.gettext("INR") for code in INR_CODES},
    }


def chart_results(
    latest: dict[tuple[str, str], Any], freshness: Freshness | None, p: Page, *, now: datetime
) -> list[Result]:
    """Dosing results first (a missing one listed as missing), then the other known vitals and
    labs, then the rest by name. Data age counts whole UTC days, as the order check does."""
    labels = _labels()
    known = [WEIGHT, CREATININE_MASS, CREATININE_MOLES, HEIGHT, BP_PANEL, *INR_CODES]
    results: list[Result] = []
    windows = freshness.days if freshness else {}
    has_creatinine = any((LOINC, code) in latest for code in (CREATININE_MASS, CREATININE_MOLES))
    for code in known:
        row = latest.get((LOINC, code))
        if row is None:
            if code == WEIGHT or (code == CREATININE_MASS and not has_creatinine):
                results.append(Result(code=code, label=labels[code], value="", window=None))
            continue
        results.append(_result(row, labels[code], windows.get(code), p, now))
    others = [row for key, row in latest.items() if not (key[0] == LOINC and key[1] in known)]
    for row in sorted(others, key=lambda r: (r.display or r.code).casefold()):
        results.append(_result(row, row.display or row.code, None, p, now))
    return results


def _result(row: Any, label: str, window: int | None, p: Page, now: datetime) -> Result:
    return Result(
        code=row.code,
        label=label,
        value=format_value(row, p),
        status=row.status,
        measured_at=row.effective_at,
        days_old=(now.astimezone(UTC).date() - row.effective_at.astimezone(UTC).date()).days,
        window=window,
    )


def format_value(row: Any, p: Page) -> str:
    fmt = p.formatter
    if row.components:
        parts = {part["code"]: part for part in row.components}
        if SYSTOLIC in parts and DIASTOLIC in parts:
            unit = UNIT_TEXT.get(parts[SYSTOLIC]["unit"], parts[SYSTOLIC]["unit"])
            systolic = fmt.number(Decimal(str(parts[SYSTOLIC]["value"])), 0)
            diastolic = fmt.number(Decimal(str(parts[DIASTOLIC]["value"])), 0)
            return f"{systolic}/{diastolic} {unit}".strip()
        return "; ".join(
            f"{part.get('display') or part['code']} {fmt.number(Decimal(str(part['value'])), 2)}"
            f" {UNIT_TEXT.get(part['unit'], part['unit'])}".strip()
            for part in row.components
        )
    if row.value is not None:
        unit = UNIT_TEXT.get(row.unit or "", row.unit or "")
        return f"{fmt.number(row.value, 2)} {unit}".strip()
    return str(row.value_text or "")


def active_medications(statements: Iterable[Any], orders: Iterable[Any]) -> list[tuple[str, Any]]:
    """What the patient takes now: active medication-list entries, and active prescriptions
    that have no list entry of their own (an imported active order adds none)."""
    listed = list(statements)
    sourced = {row.source_prescription_id for row in listed if row.source_prescription_id}
    entries: list[tuple[str, Any]] = [("statement", row) for row in listed]
    entries.extend(("prescription", row) for row in orders if row.id not in sourced)
    return entries


async def _notes(
    p: Page, patient_id: str, cursor: str | None
) -> tuple[list[NoteThread], str | None]:
    c = p.container
    page_of_notes = await list_notes(
        uows=c.uow,
        phi=c.phi,
        actor=p.actor,
        patient_id=patient_id,
        limit=NOTES_PAGE,
        cursor=cursor,
    )
    by_id = {note.id: note for note in page_of_notes.items}

    async def thread(note: NoteView, depth: int = 0) -> NoteThread:
        addenda: list[NoteThread] = []
        for addendum_id in note.addenda if depth < 10 else ():
            addendum = by_id.get(addendum_id)
            if addendum is None:
                # On a later page the addenda (always newer) were listed on an earlier one:
                # read them again so the thread is whole (an audited read, as on the API).
                addendum = await get_note(
                    uows=c.uow, phi=c.phi, actor=p.actor, patient_id=patient_id, note_id=addendum_id
                )
            addenda.append(await thread(addendum, depth + 1))
        return NoteThread(note=note, addenda=addenda)

    roots = [
        note
        for note in page_of_notes.items
        if note.amends_note_id is None or note.amends_note_id not in by_id
    ]
    return [await thread(note) for note in roots], page_of_notes.next_cursor


# -- dates --------------------------------------------------------------------------------------


def _today(p: Page) -> date:
    return p.container.clock.now().astimezone(ZoneInfo(p.formatter.timezone)).date()


def age_on(birth: date | None, today: date) -> int | None:
    """Whole years on ``today`` (the clinic's date)."""
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
