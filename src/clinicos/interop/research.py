"""De-identified research exports: which patients may be included (their current ``research``
consent, read in the export's own transaction), what is selected from the record, and the
audit entries and event that account for each run.

Interop owns it as a bulk export; it reads through records' and governance's package roots
only (docs/contexts/interop.md, *Research export*). De-identification itself is pure and
lives in ``research_deid``."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, get_args

from clinicos.governance import ConsentRequired, record_audit, require_consent
from clinicos.interop.events import ResearchExportCompleted
from clinicos.interop.research_deid import (
    DatePrecision,
    Pseudonymizer,
    age_band,
    birth_year,
    condition_row,
    medication_row,
    new_pseudonymizer,
    observation_row,
    prescription_row,
)
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, PayloadTooLarge, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records import (
    ResearchCriteria,
    ResearchSubject,
    is_loinc_code,
    require_patient,
    research_candidates,
    research_rows,
)

RESEARCH = "research"
Dataset = Literal["observations", "conditions", "medications", "anticoagulant_prescriptions"]
DATASETS: tuple[str, ...] = get_args(Dataset)
DATE_PRECISIONS: tuple[str, ...] = get_args(DatePrecision)
# Anticoagulants by RxNorm ingredient (../shared/clinical/terminology.md, "Drugs": apixaban,
# rivaroxaban, dabigatran and dabigatran etexilate, edoxaban, warfarin) or by WHO ATC group:
# B01AA vitamin K antagonists, B01AB heparins, B01AE direct thrombin inhibitors, B01AF direct
# factor Xa inhibitors (not B01AC, platelet aggregation inhibitors: not anticoagulants).
ANTICOAGULANT_RXNORM = ("1364430", "1114195", "1546356", "1037042", "1599538", "11289")
ANTICOAGULANT_ATC_PREFIXES = ("B01AA", "B01AB", "B01AE", "B01AF")
# One synchronous request: beyond these the export is refused (413), never truncated.
MAX_PATIENTS = 5_000
MAX_ROWS = 100_000
MAX_LOINC_CODES = 50
_PERIOD = re.compile(r"^(\d{4})(?:-(0[1-9]|1[0-2]))?$")
EARLIEST_YEAR = 1900


class ExportTooLarge(PayloadTooLarge):
    code = "export_too_large"
    title = "The export selects more than one request may return"


@dataclass(frozen=True)
class ResearchRequest:
    """What a researcher asks for. Periods are ``YYYY`` or ``YYYY-MM`` (never finer than
    ``date_precision``), both ends included."""

    datasets: tuple[str, ...]
    loinc_codes: tuple[str, ...] = ()
    from_period: str | None = None
    to_period: str | None = None
    date_precision: str = "year"


@dataclass(frozen=True)
class ResearchExport:
    id: str
    ran_at: datetime
    datasets: tuple[str, ...]
    date_precision: str
    patients_included: int
    patients_excluded_for_consent: int
    patients: list[dict[str, Any]]


def _invalid(field: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(
        f"invalid fields: {field}", errors=(FieldError((field,), message, kind),)
    )


def _period(field: str, value: str | None, precision: str, *, end: bool) -> date | None:
    """The first day of the period (``end``: of the period after it), or None."""
    if value is None:
        return None
    match = _PERIOD.match(value)
    if match is None:
        raise _invalid(field, "a year (YYYY) or a month (YYYY-MM)", "period")
    year, month = int(match.group(1)), match.group(2)
    if year < EARLIEST_YEAR:
        raise _invalid(field, f"a year from {EARLIEST_YEAR} on", "period")
    if month is not None and precision == "year":
        # A month bound would let repeated exports reveal the month the output withholds.
        raise _invalid(field, "a year (YYYY) when date_precision is year", "too_precise")
    if month is None:
        return date(year + 1, 1, 1) if end else date(year, 1, 1)
    first = date(year, int(month), 1)
    if not end:
        return first
    return date(year + 1, 1, 1) if first.month == 12 else date(year, first.month + 1, 1)


def research_criteria(request: ResearchRequest) -> ResearchCriteria:
    """The record's selection for ``request``; 422 naming the field that is wrong."""
    if not request.datasets:
        raise _invalid("datasets", f"at least one of {list(DATASETS)}", "too_short")
    for name in request.datasets:
        if name not in DATASETS:
            raise _invalid("datasets", f"each one of {list(DATASETS)}", "enum")
    if request.date_precision not in DATE_PRECISIONS:
        raise _invalid("date_precision", f"one of {list(DATE_PRECISIONS)}", "enum")
    wants_observations = "observations" in request.datasets
    if wants_observations and not request.loinc_codes:
        raise _invalid("loinc_codes", "the LOINC codes of the observations to export", "missing")
    if request.loinc_codes and not wants_observations:
        raise _invalid("loinc_codes", "only with the observations dataset", "unexpected")
    if len(request.loinc_codes) > MAX_LOINC_CODES:
        raise _invalid("loinc_codes", f"at most {MAX_LOINC_CODES} codes", "too_long")
    if any(not is_loinc_code(code) for code in request.loinc_codes):
        raise _invalid("loinc_codes", "LOINC codes (NNNNN-C with a valid check digit)", "code")
    start = _period("from_period", request.from_period, request.date_precision, end=False)
    end = _period("to_period", request.to_period, request.date_precision, end=True)
    if start is not None and end is not None and end <= start:
        raise _invalid("to_period", "may not be before from_period", "inverted")
    prescriptions = "anticoagulant_prescriptions" in request.datasets
    return ResearchCriteria(
        observation_codes=tuple(dict.fromkeys(request.loinc_codes)),
        conditions="conditions" in request.datasets,
        medications="medications" in request.datasets,
        anticoagulant_rxnorm=ANTICOAGULANT_RXNORM if prescriptions else (),
        anticoagulant_atc_prefixes=ANTICOAGULANT_ATC_PREFIXES if prescriptions else (),
        start=start,
        end=end,
    )


def deidentify(
    subject: ResearchSubject,
    *,
    pseudonym: str,
    today: date,
    datasets: Sequence[str],
    precision: DatePrecision,
) -> dict[str, Any]:
    """One patient as the researcher sees them: pseudonym, sex, birth year (none over 89), age
    band on ``today``, and the requested entries' codes, values, statuses and coarse dates."""
    out: dict[str, Any] = {
        "pseudonym": pseudonym,
        "sex": subject.sex,
        "birth_year": birth_year(subject.birth_date, today),
        "age_band": age_band(subject.birth_date, today),
    }
    if "observations" in datasets:
        rows = [observation_row(r, precision) for r in subject.observations]
        out["observations"] = sorted(rows, key=lambda r: (r["effective"], r["code"]))
    if "conditions" in datasets:
        out["conditions"] = [condition_row(r, precision) for r in subject.conditions]
    if "medications" in datasets:
        out["medications"] = [medication_row(r, precision) for r in subject.medications]
    if "anticoagulant_prescriptions" in datasets:
        out["anticoagulant_prescriptions"] = [
            prescription_row(r, precision) for r in subject.prescriptions
        ]
    return out


def _precision(request: ResearchRequest) -> DatePrecision:
    return "month" if request.date_precision == "month" else "year"


async def _audit(
    uow: SqlUnitOfWork, actor: Actor, action: str, target_type: str, target_id: str
) -> None:
    await record_audit(
        uow,
        organization_id=actor.organization_id,
        actor_type=actor.actor_type,
        actor_id=actor.user_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        purpose=RESEARCH,
        request_id=actor.request_id,
    )


async def extract_patient(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    *,
    patient_id: str,
    request: ResearchRequest,
    pseudonymize: Pseudonymizer,
    today: date,
) -> dict[str, Any]:
    """One patient's de-identified extract, in the caller's unit of work: 404 when the patient
    is not the organization's, 409 ``consent_required`` (naming ``research``) unless the
    patient's current research consent is ``granted`` — read now, so a revocation refuses the
    very next call. Writes one ``research.extract`` audit entry (target the patient); the
    caller commits."""
    criteria = research_criteria(request)
    await require_patient(uow, actor, patient_id)
    await require_consent(uow, actor, patient_id, RESEARCH)
    rows = await research_rows(uow, phi, actor, [patient_id], criteria, max_rows=MAX_ROWS)
    if rows.overflow:
        raise ExportTooLarge(f"more than {MAX_ROWS} entries; narrow the datasets or the period")
    await _audit(uow, actor, "research.extract", "patient", patient_id)
    return deidentify(
        rows.subjects[0],
        pseudonym=pseudonymize(patient_id),
        today=today,
        datasets=request.datasets,
        precision=_precision(request),
    )


async def _consenting(
    uow: SqlUnitOfWork, actor: Actor, candidates: Sequence[str]
) -> tuple[list[str], int]:
    """The candidates whose current research consent is granted, and how many are not —
    through ``require_consent``, the same refusal ``extract_patient`` meets."""
    included: list[str] = []
    for patient_id in candidates:
        try:
            await require_consent(uow, actor, patient_id, RESEARCH)
        except ConsentRequired:
            continue
        included.append(patient_id)
    return included, len(candidates) - len(included)


async def run_research_export(
    *,
    uows: Callable[[str | None], SqlUnitOfWork],
    phi: PhiKeyring,
    actor: Actor,
    request: ResearchRequest,
) -> ResearchExport:
    """Run one export in one transaction: the organization's patients with matching entries,
    those whose research consent is granted now, their de-identified data under a fresh
    pseudonym key, one ``research.extract`` audit entry per included patient, one
    ``research.export`` entry (target the export id) and a ``ResearchExportCompleted`` event
    with the counts. Nothing is stored but the audit rows and the event: no cache, so a
    revocation takes effect at the next export."""
    criteria = research_criteria(request)
    precision = _precision(request)
    pseudonymize = new_pseudonymizer()
    export_id = new_id()
    async with uows(actor.organization_id) as uow:
        ran_at = uow.clock.now()
        candidates = await research_candidates(uow, actor, criteria, limit=MAX_PATIENTS)
        if len(candidates) > MAX_PATIENTS:
            raise ExportTooLarge(
                f"more than {MAX_PATIENTS} patients match; narrow the datasets or the period"
            )
        included, excluded = await _consenting(uow, actor, candidates)
        rows = await research_rows(uow, phi, actor, included, criteria, max_rows=MAX_ROWS)
        if rows.overflow:
            raise ExportTooLarge(f"more than {MAX_ROWS} entries; narrow the datasets or the period")
        patients = [
            deidentify(
                subject,
                pseudonym=pseudonymize(subject.patient_id),
                today=ran_at.date(),
                datasets=request.datasets,
                precision=precision,
            )
            for subject in rows.subjects
        ]
        # Sorted by pseudonym: the order of ids (or of registration) would be a link back.
        patients.sort(key=lambda p: str(p["pseudonym"]))
        for subject in rows.subjects:
            await _audit(uow, actor, "research.extract", "patient", subject.patient_id)
        await _audit(uow, actor, "research.export", "research_export", export_id)
        uow.record(
            ResearchExportCompleted(
                organization_id=actor.organization_id,
                export_id=export_id,
                requested_by=actor.user_id,
                datasets=list(request.datasets),
                date_precision=precision,
                patients_included=len(patients),
                patients_excluded_for_consent=excluded,
            )
        )
        await uow.commit()
    return ResearchExport(
        id=export_id,
        ran_at=ran_at,
        datasets=tuple(request.datasets),
        date_precision=precision,
        patients_included=len(patients),
        patients_excluded_for_consent=excluded,
        patients=patients,
    )
