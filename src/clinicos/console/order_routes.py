"""Console pages: anticoagulant order entry with decision support, and the pharmacists'
second sign-off queue.

A clinician composes an order and checks it on the patient's stored record (cds'
``record_patient_evaluation``, the service behind ``POST /api/v1/cds/evaluate`` with a
``patient_id``: one governance event per check) and sees the outcome, CrCl and every reason
before signing. Then, by outcome:

- PASS: "Sign and issue" writes the draft and issues it through records' ``issue_prescription``
  with the prescribing gate (``Container.prescription_check``), which checks it again in the
  issuing transaction.
- ATTEST: record the missing or stale value (``record_fresh_value``) or attest
  (``record_attestation``); the order is checked again at once.
- WARN / BLOCK: an override with a reason code (and a comment). The gate honours an override of
  an evaluation of *that* draft, so the draft is written and issued first: the gate's refusal
  names its evaluation, which is the one overridden. A WARN override issues at once; a BLOCK
  override waits for a pharmacist's co-signature (``/console/sign-offs``), after which the order
  page issues it.

The order page (``/console/patients/{id}/orders/{prescription_id}``) shows a draft's or an
issued order's state from what records and cds stored. No PHI in URLs: paths carry opaque ids,
query strings only fixed result codes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal
from fastapi import APIRouter, Depends
from fastapi.responses import Response

from clinicos.cds import (
    GATE_FACTS,
    AttestationRequired,
    FreshValue,
    Order,
    OverrideNotPending,
    OverridePolicy,
    OverrideView,
    RecordedEvaluation,
    RecordIncomplete,
    RulePackNotActive,
    SelfCosignRefused,
    StoredEvaluation,
    cosign_override,
    explain_evaluation,
    load_rule_pack,
    order_decisions,
    override_reasons,
    pending_cosign,
    record_attestation,
    record_fresh_value,
    record_override,
    record_patient_evaluation,
)
from clinicos.console import i18n
from clinicos.console.session import COOKIE_PATH
from clinicos.console.web import Page, page
from clinicos.identity import Permission, list_members
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.records import (
    PLAUSIBLE_RANGES,
    InvalidTransition,
    PatientSearch,
    PatientView,
    PrescriptionFields,
    PrescriptionRefused,
    RecordNotFound,
    cancel_prescription,
    create_prescription,
    get_patient,
    get_prescription,
    issue_prescription,
    list_prescriptions,
    search_patients,
)

router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False)
Prescriber = Annotated[Page, Depends(page(Permission.prescription_write))]
Reviewer = Annotated[Page, Depends(page(Permission.cds_cosign))]

SIGN_OFFS = COOKIE_PATH + "/sign-offs"
NAMES_PAGE = 50  # patients named per records search (its page size is at most 100)
# The FHIR system of RxNorm codes (records' MEDICATION_CODE_SYSTEMS; the gate recognises the
# pack's drugs by their RxNorm ingredient code).
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ROUTE = "oral"  # every drug the engine checks is taken by mouth
DOSE_UNIT = "mg"
# Input limits: no anticoagulant dose comes near 1000 mg, so a larger number is a typing slip.
MAX_DOSE_MG = Decimal(1000)
MAX_COMMENT_CHARS = 1000
MAX_ATTEST_REASON_CHARS = 500
MAX_ATTEST_HOURS = 72
DEFAULT_ATTEST_HOURS = 24
OTHER = "other"
N_ = str  # marks a message for the catalog; translated where it is shown

# The values the engine and the prescribing gate accept (cds.engine.keys), with their labels.
DRUG_LABELS: dict[str, str] = {
    "apixaban": N_("Apixaban"),
    "rivaroxaban": N_("Rivaroxaban"),
    "dabigatran": N_("Dabigatran"),
    "edoxaban": N_("Edoxaban"),
    "warfarin": N_("Warfarin"),
}
FREQUENCIES: dict[str, str] = {
    "QD": N_("Once daily (QD)"),
    "BID": N_("Twice daily (BID)"),
    "TID": N_("Three times daily (TID)"),
    "QID": N_("Four times daily (QID)"),
}
INDICATIONS: dict[str, str] = {
    "nvaf": N_("Non-valvular atrial fibrillation"),
    "vte_treatment": N_("Treatment of DVT/PE"),
    "vte_prophylaxis": N_("VTE prophylaxis after hip or knee replacement"),
}
CREATININE_UNITS: dict[str, str] = {
    "mg/dL": "serum_creatinine_mg_dl",
    "umol/L": "serum_creatinine_umol_l",
}
FACT_LABELS: dict[str, str] = {
    "serum_creatinine": N_("Serum creatinine"),
    "weight": N_("Body weight"),
}
STATUS_LABELS: dict[str, str] = {
    "draft": N_("Draft (not issued)"),
    "active": N_("Issued"),
    "completed": N_("Completed"),
    "cancelled": N_("Cancelled"),
    "pending_cosign": N_("Waiting for a pharmacist's co-signature"),
    "approved": N_("Approved"),
}
POLICY_LABELS: dict[str, str] = {"label": N_("Drug label"), "local": N_("Local policy")}
# What the order page says after an action (the query string carries only these codes).
RESULTS: dict[str, tuple[str, str]] = {
    "issued": ("notice", N_("The prescription was issued.")),
    "refused": ("alert", N_("Decision support did not let this order be issued: see why below.")),
    "pending": (
        "notice",
        N_("Override recorded. A pharmacist must co-sign it before the order can be issued."),
    ),
    "changed": (
        "alert",
        N_(
            "Decision support's answer changed since your check, so your override was not "
            "recorded. Review the new answer below."
        ),
    ),
    "cancelled": ("notice", N_("The draft was cancelled.")),
    "not_draft": ("notice", N_("This order is no longer a draft: here is where it stands.")),
    "cosigned": ("notice", N_("Co-signed. The prescriber can now issue the order.")),
    "not_pending": ("notice", N_("That override no longer needs a co-signature.")),
}


@cache
def drug_codes() -> dict[str, str]:
    """Each drug the rule pack checks, by its RxNorm ingredient code."""
    return {name: info.rxnorm[0] for name, info in load_rule_pack().drugs.items()}


# -- the order form -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderForm:
    """The order as typed (kept verbatim for re-rendering) and its checks."""

    drug: str = ""
    dose: str = ""
    frequency: str = ""
    indication: str = ""

    @classmethod
    def of(cls, form: Mapping[str, Any]) -> OrderForm:
        def text(name: str) -> str:
            return str(form.get(name, "")).strip()[:40]

        return cls(
            drug=text("drug").lower(),
            dose=text("dose"),
            frequency=text("frequency").upper(),
            indication=text("indication").lower(),
        )

    def dose_mg(self) -> Decimal | None:
        raw = self.dose.replace(" ", "")
        if "," in raw and "." not in raw:
            raw = raw.replace(",", ".")  # "2,5" as written in Bolivia and Brazil
        try:
            value = Decimal(raw)
        except InvalidOperation:
            return None
        return value if value.is_finite() else None

    def problems(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if self.drug not in drug_codes():
            errors["drug"] = i18n.gettext("Choose the anticoagulant.")
        dose = self.dose_mg()
        if not self.dose:
            errors["dose"] = i18n.gettext("Enter the dose in mg.")
        elif dose is None:
            errors["dose"] = i18n.gettext("Enter the dose as a number of mg, for example 5 or 2.5.")
        elif not 0 < dose <= MAX_DOSE_MG:
            errors["dose"] = i18n.gettext(
                "The dose must be more than 0 mg and at most %(max)s mg.", max=MAX_DOSE_MG
            )
        if self.frequency not in FREQUENCIES:
            errors["frequency"] = i18n.gettext("Choose how often it is taken.")
        if self.indication not in INDICATIONS:
            errors["indication"] = i18n.gettext("Choose the indication.")
        return errors

    def order(self) -> Order:
        """The engine's order (call only when ``problems()`` is empty)."""
        return Order.model_validate(
            {
                "drug": self.drug,
                "dose_mg": self.dose_mg(),
                "frequency": self.frequency,
                "indication": self.indication,
            }
        )

    def prescription(self) -> PrescriptionFields:
        dose = self.dose_mg()
        assert dose is not None  # checked by problems()
        return PrescriptionFields(
            code_system=RXNORM,
            code=drug_codes()[self.drug],
            display=self.drug,
            dose=dose,
            dose_unit=DOSE_UNIT,
            frequency=self.frequency,
            route=ROUTE,
            indication=self.indication,
        )


# -- what a check said, for the page ---------------------------------------------------------------


@dataclass(frozen=True)
class ReasonView:
    key: str
    severity: str
    message: str
    source: str
    policy: str
    suggestion: str | None
    attested: bool = False


@dataclass(frozen=True)
class FactView:
    label: str
    value: str | None  # None: not recorded
    measured: str | None


@dataclass(frozen=True)
class CheckView:
    """A check as the page shows it: from the engine's answer just given (``live``) or from the
    stored evaluation (``stored``: no suggestions or facts, which are not stored)."""

    evaluation_id: str
    outcome: str
    crcl: str | None
    reasons: tuple[ReasonView, ...]
    rule_pack: str
    gated_facts: tuple[str, ...]  # facts behind ATTEST reasons still open
    facts: tuple[FactView, ...] = ()

    @property
    def overridable(self) -> bool:
        return self.outcome in ("WARN", "BLOCK") and not self.gated_facts

    @property
    def has_suggestions(self) -> bool:
        return any(r.suggestion for r in self.reasons)


def crcl_text(p: Page, value: Decimal | None) -> str | None:
    """CrCl as the engine rounded it (one decimal, kept: "29,0" in the clinic's locale)."""
    if value is None:
        return None
    return format_decimal(value, format="#,##0.0", locale=p.formatter.locale)


def measured_text(p: Page, value: Decimal) -> str:
    """A lab value or weight with at least one decimal, as labs write them ("3,0 mg/dL")."""
    return format_decimal(value, format="#,##0.0##", locale=p.formatter.locale)


def _gated(keys: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(GATE_FACTS[k] for k in keys if k in GATE_FACTS))


def live_check(p: Page, recorded: RecordedEvaluation) -> CheckView:
    evaluation, attested = recorded.evaluation, recorded.attested
    covered = {} if attested is None else attested.attested
    reasons = tuple(
        ReasonView(
            key=r.key,
            severity=r.severity,
            message=r.message(p.lang),
            source=r.source,
            policy=r.policy,
            suggestion=r.suggestion.text.get(p.lang) if r.suggestion is not None else None,
            attested=r.key in covered,
        )
        for r in evaluation.reasons
    )
    facts: tuple[FactView, ...] = ()
    record = recorded.record
    if record is not None:
        weight, creatinine = record.weight, record.creatinine
        facts = (
            FactView(
                i18n.gettext("Body weight"),
                None if weight is None else f"{measured_text(p, weight.value_kg)} kg",
                None if weight is None else p.formatter.day(weight.measured_at),
            ),
            FactView(
                i18n.gettext("Serum creatinine"),
                None
                if creatinine is None
                else f"{measured_text(p, creatinine.value)} {creatinine.unit}",
                None if creatinine is None else p.formatter.day(creatinine.measured_at),
            ),
        )
    return CheckView(
        evaluation_id=recorded.evaluation_id,
        outcome=recorded.outcome,
        crcl=crcl_text(p, evaluation.crcl_ml_min),
        reasons=reasons,
        rule_pack=f"{evaluation.rule_pack.id} {evaluation.rule_pack.version}",
        gated_facts=_gated(() if attested is None else attested.unattested),
        facts=facts,
    )


def stored_check(p: Page, stored: StoredEvaluation) -> CheckView:
    reasons = tuple(
        ReasonView(
            key=r.key,
            severity=r.severity or "INFO",
            message=r.message(p.lang),
            source=r.source or "",
            policy=r.policy or "",
            suggestion=None,
        )
        for r in stored.reasons
    )
    return CheckView(
        evaluation_id=stored.evaluation_id,
        outcome=stored.outcome,
        crcl=crcl_text(p, stored.crcl_ml_min),
        reasons=reasons,
        rule_pack=f"{stored.rule_pack_id} {stored.rule_pack_version}",
        gated_facts=_gated([r.key for r in reasons if r.severity == "ATTEST"])
        if stored.outcome == "ATTEST"
        else (),
    )


# -- shared plumbing ----------------------------------------------------------------------------


def _production(p: Page) -> bool:
    return bool(p.container.settings.env.value == "production")


def _policy(p: Page) -> OverridePolicy:
    cds = p.container.settings.cds
    return OverridePolicy(
        reason_codes=tuple(cds.override_reason_codes),
        block_needs_cosign=cds.block_override_needs_cosign,
    )


def _reason_choices(p: Page) -> list[tuple[str, str]]:
    """The configured override reasons, for the select (``other`` says it needs a comment)."""
    return [
        (r.code, i18n.gettext(r.display))
        for r in override_reasons(p.container.settings.cds.override_reason_codes)
    ]


def _reason_names(p: Page) -> dict[str, str]:
    """The configured override reasons as a listing names them."""
    names = dict(_reason_choices(p))
    if OTHER in names:
        names[OTHER] = i18n.gettext("Other")
    return names


async def _patient(p: Page, patient_id: str) -> PatientView:
    """The clinic's patient (records' 404 page for another clinic's, or none)."""
    c = p.container
    return await get_patient(uows=c.uow, phi=c.phi, actor=p.actor, patient_id=patient_id)


async def _names(p: Page, user_ids: set[str]) -> dict[str, str]:
    """Display names of the clinic's members among ``user_ids``."""
    if not user_ids:
        return {}
    async with p.container.uow(p.actor.organization_id) as uow:
        members = await list_members(uow, organization_id=p.actor.organization_id)
    return {user.id: user.display_name for user, _ in members if user.id in user_ids}


def _order_path(patient_id: str, prescription_id: str) -> str:
    return f"{COOKIE_PATH}/patients/{patient_id}/orders/{prescription_id}"


def _field_errors(
    exc: ValidationFailed, names: Mapping[str, str], fallback: str, limit: str = ""
) -> dict[str, str]:
    """A service's field errors placed next to the form's fields (``names``: a path element of
    the service's field → the form field), in the user's language where the kind is known."""
    errors: dict[str, str] = {}
    for problem in exc.errors or (FieldError(("form",), exc.detail),):
        where = next((names[str(part)] for part in problem.loc if str(part) in names), fallback)
        if problem.type == "future":
            message = i18n.gettext("It may not be in the future.")
        elif problem.type == "range" and limit:
            message = i18n.gettext(
                "Not plausible: enter a value above 0 and at most %(max)s.", max=limit
            )
        else:
            message = i18n.gettext("Not accepted: %(detail)s", detail=problem.message)
        errors.setdefault(where, message)
    return errors


def _choices(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(code, i18n.gettext(label)) for code, label in labels.items()]


def order_summary(
    p: Page, drug: str, dose: Decimal | None, frequency: str | None, indication: str | None
) -> str:
    """The order in words: "Dabigatran 150 mg · Twice daily (BID) · Treatment of DVT/PE"."""
    name = i18n.gettext(DRUG_LABELS.get(drug, drug.capitalize()))
    parts = [name if dose is None else f"{name} {p.formatter.number(dose, 3)} {DOSE_UNIT}"]
    if frequency:
        parts.append(i18n.gettext(FREQUENCIES.get(frequency, frequency)))
    if indication:
        parts.append(i18n.gettext(INDICATIONS.get(indication, indication)))
    return " · ".join(parts)


def render_new(
    p: Page,
    patient: PatientView,
    form: OrderForm,
    *,
    errors: dict[str, str] | None = None,
    check: CheckView | None = None,
    notice: str | None = None,
    posted: Mapping[str, Any] | None = None,
    drafts: list[tuple[Any, str]] | None = None,
    status: int = 200,
) -> Response:
    return p.render(
        "orders/new.html",
        status=status,
        drafts=drafts or [],
        patient=patient,
        form=form,
        errors=errors or {},
        check=check,
        notice=notice,
        posted=posted or {},
        labels=_labels(),
        options={
            "drug": _choices({d: DRUG_LABELS.get(d, d.capitalize()) for d in drug_codes()}),
            "frequency": _choices(FREQUENCIES),
            "indication": _choices(INDICATIONS),
            "creatinine_unit": [("mg/dL", "mg/dL"), ("umol/L", "µmol/L")],
        },
        summary=""
        if form.problems()
        else order_summary(p, form.drug, form.dose_mg(), form.frequency, form.indication),
        reason_choices=_reason_choices(p),
        block_needs_cosign=_policy(p).block_needs_cosign,
        default_hours=DEFAULT_ATTEST_HOURS,
        max_hours=MAX_ATTEST_HOURS,
    )


def _labels() -> dict[str, Mapping[str, str]]:
    return {
        "frequency": FREQUENCIES,
        "indication": INDICATIONS,
        "fact": FACT_LABELS,
        "status": STATUS_LABELS,
        "policy": POLICY_LABELS,
    }


async def _checked(p: Page, patient: PatientView, form: OrderForm, notice: str | None) -> Response:
    """Check the order on the record (one recorded evaluation) and show the answer."""
    c = p.container
    try:
        recorded = await record_patient_evaluation(
            uows=c.uow,
            phi=c.phi,
            actor=p.actor,
            patient_id=patient.id,
            order=form.order(),
            production=_production(p),
        )
    except RecordIncomplete:
        message = i18n.gettext(
            "The record lacks the patient's sex or date of birth, which the kidney-function "
            "estimate needs. Complete the record, then check again."
        )
        return render_new(p, patient, form, errors={"form": message}, status=409)
    except RulePackNotActive:
        message = i18n.gettext(
            "Decision support is not available: no approved rule pack is active for this "
            "clinic. Ask an administrator."
        )
        return render_new(p, patient, form, errors={"form": message}, status=503)
    return render_new(p, patient, form, check=live_check(p, recorded), notice=notice)


# -- compose and check --------------------------------------------------------------------------


@router.get("/patients/{patient_id}/orders/new")
async def new_order(patient_id: str, p: Prescriber) -> Response:
    """The order form, and the patient's drafts not yet issued (an order waiting for a
    co-signature is found again here, from the chart's "Order anticoagulant")."""
    patient = await _patient(p, patient_id)
    drafts = await list_prescriptions(
        uows=p.container.uow, actor=p.actor, patient_id=patient.id, status="draft", limit=20
    )
    waiting = [
        (row, order_summary(p, row.display, row.dose, row.frequency, row.indication))
        for row in drafts.items
    ]
    return render_new(p, patient, OrderForm(), drafts=waiting)


@router.post("/patients/{patient_id}/orders/new")
async def check_order(patient_id: str, p: Prescriber) -> Response:
    patient = await _patient(p, patient_id)
    form = OrderForm.of(p.form)
    errors = form.problems()
    if errors:
        return render_new(p, patient, form, errors=errors, status=422)
    return await _checked(p, patient, form, None)


async def _checked_form(p: Page, patient_id: str) -> tuple[PatientView, OrderForm, Response | None]:
    """The patient and the order a follow-up form carries (hidden fields); a re-rendered form
    when they do not hold (edited by hand)."""
    patient = await _patient(p, patient_id)
    form = OrderForm.of(p.form)
    errors = form.problems()
    if errors:
        return patient, form, render_new(p, patient, form, errors=errors, status=422)
    return patient, form, None


class CheckedOrderChanged(Exception):
    """The follow-up form's order is not the one its evaluation checked (edited by hand)."""


async def _stored_check(
    p: Page, evaluation_id: str, patient: PatientView, form: OrderForm
) -> CheckView:
    """The check a follow-up form names: this patient's (else records' 404), of this order."""
    stored = await explain_evaluation(
        uows=p.container.uow, actor=p.actor, evaluation_id=evaluation_id[:36]
    )
    if stored.patient_id != patient.id:
        raise RecordNotFound("no such evaluation for this patient")
    checked = (stored.drug, stored.dose_mg, stored.frequency, stored.indication)
    if checked != (form.drug, form.dose_mg(), form.frequency, form.indication):
        raise CheckedOrderChanged
    return stored_check(p, stored)


def _changed(p: Page, patient: PatientView, form: OrderForm) -> Response:
    message = i18n.gettext("The order changed since it was checked: check it again.")
    return render_new(p, patient, form, errors={"form": message}, status=409)


# -- ATTEST: record the value, or attest -------------------------------------------------------


def _measured_at(p: Page, raw: str) -> datetime | None:
    """A ``datetime-local`` value, read in the clinic's timezone."""
    try:
        moment = datetime.fromisoformat(raw.strip()[:32])
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(p.formatter.timezone))
    return moment


# The LOINC code and UCUM unit records files each value under (cds' record form).
MEASUREMENTS: dict[str, tuple[str, str]] = {
    "serum_creatinine_mg_dl": ("2160-0", "mg/dL"),
    "serum_creatinine_umol_l": ("14682-9", "umol/L"),
    "weight_kg": ("29463-7", "kg"),
}


def _plausible_limit(field: str) -> str:
    """records' plausibility limit for a recorded value, as "40 mg/dL" (empty if none)."""
    code, unit = MEASUREMENTS[field]
    limit = PLAUSIBLE_RANGES.get(code, {}).get(unit)
    return "" if limit is None else f"{limit} {unit}"


def _positive(raw: str) -> Decimal | None:
    text = raw.strip().replace(" ", "")[:20]
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


def _fresh_value(p: Page, kind: str) -> tuple[FreshValue | None, dict[str, str]]:
    prefix = "creatinine" if kind == "creatinine" else "weight"
    errors: dict[str, str] = {}
    value = _positive(str(p.form.get(f"{prefix}_value", "")))
    if value is None:
        errors[f"{prefix}_value"] = i18n.gettext("Enter the value as a number above 0.")
    measured = _measured_at(p, str(p.form.get(f"{prefix}_measured_at", "")))
    if measured is None:
        errors[f"{prefix}_measured_at"] = i18n.gettext("Enter when it was measured.")
    if kind == "creatinine":
        unit = str(p.form.get("creatinine_unit", ""))
        if unit not in CREATININE_UNITS:
            errors["creatinine_unit"] = i18n.gettext("Choose the unit.")
        field = CREATININE_UNITS.get(unit, "serum_creatinine_mg_dl")
    else:
        field = "weight_kg"
    if errors:
        return None, errors
    assert value is not None and measured is not None
    return FreshValue(field=field, value=value, measured_at=measured), {}  # type: ignore[arg-type]


async def _attest(p: Page, evaluation_id: str) -> tuple[str | None, dict[str, str]]:
    """Record the posted value or attestation; the notice to show, or the errors."""
    c = p.container
    action = str(p.form.get("action", ""))
    if action in ("creatinine", "weight"):
        value, errors = _fresh_value(p, action)
        if value is None:
            return None, errors
        prefix = "creatinine" if action == "creatinine" else "weight"
        try:
            await record_fresh_value(
                uows=c.uow, phi=c.phi, actor=p.actor, evaluation_id=evaluation_id, value=value
            )
        except ValidationFailed as exc:
            names = {
                "serum_creatinine_mg_dl": f"{prefix}_value",
                "serum_creatinine_umol_l": f"{prefix}_value",
                "weight_kg": f"{prefix}_value",
                "measured_at": f"{prefix}_measured_at",
            }
            return None, _field_errors(exc, names, "form", _plausible_limit(value.field))
        label = FACT_LABELS["serum_creatinine" if action == "creatinine" else "weight"]
        return i18n.gettext(
            "%(fact)s recorded in the chart. The order was checked again.",
            fact=i18n.gettext(label),
        ), {}
    facts = [fact for fact in FACT_LABELS if p.form.get(f"attest_{fact}") == "on"]
    reason = str(p.form.get("attest_reason", "")).strip()
    errors = {}
    if not facts:
        errors["attest_facts"] = i18n.gettext("Choose what you attest to.")
    if not reason:
        errors["attest_reason"] = i18n.gettext("Say why it is acceptable to proceed.")
    elif len(reason) > MAX_ATTEST_REASON_CHARS:
        errors["attest_reason"] = i18n.gettext(
            "At most %(max)s characters.", max=MAX_ATTEST_REASON_CHARS
        )
    hours_text = str(p.form.get("attest_hours", "")).strip()[:4]
    hours = int(hours_text) if hours_text.isdigit() else 0
    if not 1 <= hours <= MAX_ATTEST_HOURS:
        errors["attest_hours"] = i18n.gettext(
            "Enter a whole number of hours from 1 to %(max)s.", max=MAX_ATTEST_HOURS
        )
    if errors:
        return None, errors
    try:
        await record_attestation(
            uows=c.uow,
            phi=c.phi,
            actor=p.actor,
            evaluation_id=evaluation_id,
            facts=facts,
            reason=reason,
            expires_in_hours=hours,
        )
    except ValidationFailed as exc:
        names = {"reason": "attest_reason", "expires_in_hours": "attest_hours"}
        return None, _field_errors(exc, names, "attest_facts")
    return i18n.gettext(
        "Attestation recorded for %(hours)s hours. The order was checked again.", hours=hours
    ), {}


@router.post("/patients/{patient_id}/orders/new/attest")
async def attest_order(patient_id: str, p: Prescriber) -> Response:
    patient, form, refused = await _checked_form(p, patient_id)
    if refused is not None:
        return refused
    evaluation_id = str(p.form.get("evaluation_id", ""))[:36]
    try:
        check = await _stored_check(p, evaluation_id, patient, form)
    except CheckedOrderChanged:
        return _changed(p, patient, form)
    notice, errors = await _attest(p, evaluation_id)
    if errors:
        return render_new(p, patient, form, errors=errors, check=check, posted=p.form, status=422)
    return await _checked(p, patient, form, notice)


# -- PASS: sign and issue ------------------------------------------------------------------------


async def _issue(p: Page, patient_id: str, prescription_id: str) -> str:
    """Issue through the prescribing gate; the result code for the order page."""
    c = p.container
    try:
        await issue_prescription(
            uows=c.uow,
            phi=c.phi,
            actor=p.actor,
            patient_id=patient_id,
            prescription_id=prescription_id,
            check=c.prescription_check,
        )
    except PrescriptionRefused:
        return "refused"
    except InvalidTransition:
        return "not_draft"  # issued or cancelled meanwhile (a second click): show it as it is
    return "issued"


async def _draft(p: Page, patient_id: str, form: OrderForm) -> str:
    c = p.container
    row = await create_prescription(
        uows=c.uow, phi=c.phi, actor=p.actor, patient_id=patient_id, values=form.prescription()
    )
    return str(row.id)


@router.post("/patients/{patient_id}/orders/new/issue")
async def issue_new_order(patient_id: str, p: Prescriber) -> Response:
    patient, form, refused = await _checked_form(p, patient_id)
    if refused is not None:
        return refused
    prescription_id = await _draft(p, patient.id, form)
    result = await _issue(p, patient.id, prescription_id)
    return p.redirect(_order_path(patient.id, prescription_id), result=result)


# -- WARN / BLOCK: override ----------------------------------------------------------------------


def _override_input(p: Page) -> tuple[str, str | None, dict[str, str]]:
    code = str(p.form.get("reason_code", "")).strip()[:64]
    comment = str(p.form.get("comment", "")).strip()
    errors: dict[str, str] = {}
    if code not in _policy(p).reason_codes:
        errors["reason_code"] = i18n.gettext("Choose the reason for the override.")
    if len(comment) > MAX_COMMENT_CHARS:
        errors["comment"] = i18n.gettext("At most %(max)s characters.", max=MAX_COMMENT_CHARS)
    elif code == OTHER and not comment:
        errors["comment"] = i18n.gettext("Explain the reason: a comment is required with Other.")
    return code, comment or None, errors


async def _override_and_issue(
    p: Page,
    patient_id: str,
    prescription_id: str,
    evaluation_id: str,
    code: str,
    comment: str | None,
) -> str:
    """Override the draft's evaluation; a WARN override (approved at once) issues the order."""
    c = p.container
    view: OverrideView = await record_override(
        uows=c.uow,
        actor=p.actor,
        policy=_policy(p),
        evaluation_id=evaluation_id,
        reason_code=code,
        comment=comment,
        phi=c.phi,
    )
    if view.status != "approved":
        return "pending"
    return await _issue(p, patient_id, prescription_id)


@router.post("/patients/{patient_id}/orders/new/override")
async def override_new_order(patient_id: str, p: Prescriber) -> Response:
    patient, form, refused = await _checked_form(p, patient_id)
    if refused is not None:
        return refused
    try:
        seen = await _stored_check(p, str(p.form.get("evaluation_id", "")), patient, form)
    except CheckedOrderChanged:
        return _changed(p, patient, form)
    code, comment, errors = _override_input(p)
    if errors or not seen.overridable:
        if not seen.overridable:
            errors["form"] = i18n.gettext("Only a WARN or BLOCK answer can be overridden.")
        return render_new(p, patient, form, errors=errors, check=seen, posted=p.form, status=422)
    # The gate honours an override of an evaluation of this very draft: write it, let the gate
    # check it (a refusal names that evaluation), and override that one, if it says what the
    # clinician saw.
    prescription_id = await _draft(p, patient.id, form)
    c = p.container
    try:
        await issue_prescription(
            uows=c.uow,
            phi=c.phi,
            actor=p.actor,
            patient_id=patient.id,
            prescription_id=prescription_id,
            check=c.prescription_check,
        )
    except PrescriptionRefused as exc:
        keys = {str(k) for k in exc.data.get("reasons", [])}
        same = (
            not isinstance(exc, AttestationRequired)
            and exc.data.get("outcome") == seen.outcome
            and keys <= {r.key for r in seen.reasons}
        )
        result = "changed"
        if same:
            result = await _override_and_issue(
                p, patient.id, prescription_id, str(exc.data["evaluation_id"]), code, comment
            )
    else:
        result = "issued"  # the record changed since the check and the order now passes
    return p.redirect(_order_path(patient.id, prescription_id), result=result)


# -- the order page ------------------------------------------------------------------------------


async def _order_page(
    p: Page,
    patient_id: str,
    prescription_id: str,
    *,
    result: str | None = None,
    errors: dict[str, str] | None = None,
    posted: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    c = p.container
    patient = await _patient(p, patient_id)
    rx = await get_prescription(
        uows=c.uow, actor=p.actor, patient_id=patient.id, prescription_id=prescription_id
    )
    decisions = await order_decisions(uows=c.uow, actor=p.actor, prescription_id=rx.id)
    current = [o for o in decisions.overrides if o.prescription_version == rx.version]
    latest = decisions.latest
    check = None if latest is None else stored_check(p, latest)
    latest_current = latest is not None and latest.prescription_version == rx.version
    overridden = {o.override.evaluation_id for o in decisions.overrides}
    pending = any(o.override.status == "pending_cosign" for o in current)
    approved = any(o.override.status == "approved" for o in current)
    can_override = (
        rx.status == "draft"
        and check is not None
        and latest_current
        and check.overridable
        and check.evaluation_id not in overridden
        and not pending
        and not approved
    )
    needs_data = check is not None and latest_current and bool(check.gated_facts)
    can_issue = rx.status == "draft" and not pending and not can_override and not needs_data
    people = {o.override.created_by for o in decisions.overrides}
    people |= {o.override.cosigned_by for o in decisions.overrides if o.override.cosigned_by}
    kind, message = RESULTS.get(result or "", ("", ""))
    return p.render(
        "orders/order.html",
        status=status,
        patient=patient,
        rx=rx,
        check=check,
        evaluated_at=None if latest is None else latest.evaluated_at,
        summary=order_summary(p, rx.display, rx.dose, rx.frequency, rx.indication),
        reasons=_reason_names(p),
        overrides=decisions.overrides,
        names=await _names(p, people),
        can_override=can_override,
        can_issue=can_issue,
        pending=pending,
        result_kind=kind,
        result_message=i18n.gettext(message) if message else None,
        errors=errors or {},
        posted=posted or {},
        labels=_labels(),
        reason_choices=_reason_choices(p),
        block_needs_cosign=_policy(p).block_needs_cosign,
    )


@router.get("/patients/{patient_id}/orders/{prescription_id}")
async def show_order(
    patient_id: str, prescription_id: str, p: Prescriber, result: str | None = None
) -> Response:
    return await _order_page(p, patient_id, prescription_id, result=result)


@router.post("/patients/{patient_id}/orders/{prescription_id}/issue")
async def issue_order(patient_id: str, prescription_id: str, p: Prescriber) -> Response:
    patient = await _patient(p, patient_id)
    rx = await get_prescription(
        uows=p.container.uow, actor=p.actor, patient_id=patient.id, prescription_id=prescription_id
    )
    result = await _issue(p, patient.id, rx.id)
    return p.redirect(_order_path(patient.id, rx.id), result=result)


@router.post("/patients/{patient_id}/orders/{prescription_id}/override")
async def override_order(patient_id: str, prescription_id: str, p: Prescriber) -> Response:
    c = p.container
    patient = await _patient(p, patient_id)
    rx = await get_prescription(
        uows=c.uow, actor=p.actor, patient_id=patient.id, prescription_id=prescription_id
    )
    decisions = await order_decisions(uows=c.uow, actor=p.actor, prescription_id=rx.id)
    latest = decisions.latest
    if latest is None or latest.evaluation_id != str(p.form.get("evaluation_id", "")):
        return p.redirect(_order_path(patient.id, rx.id), result="changed")
    code, comment, errors = _override_input(p)
    if errors:
        return await _order_page(p, patient.id, rx.id, errors=errors, posted=p.form, status=422)
    result = await _override_and_issue(p, patient.id, rx.id, latest.evaluation_id, code, comment)
    return p.redirect(_order_path(patient.id, rx.id), result=result)


@router.post("/patients/{patient_id}/orders/{prescription_id}/cancel")
async def cancel_order(patient_id: str, prescription_id: str, p: Prescriber) -> Response:
    c = p.container
    patient = await _patient(p, patient_id)
    try:
        await cancel_prescription(
            uows=c.uow,
            phi=c.phi,
            actor=p.actor,
            patient_id=patient.id,
            prescription_id=prescription_id,
        )
    except InvalidTransition:
        return p.redirect(_order_path(patient.id, prescription_id), result="not_draft")
    return p.redirect(_order_path(patient.id, prescription_id), result="cancelled")


# -- the second sign-off queue ---------------------------------------------------------------------


async def _queue(
    p: Page, *, result: str | None = None, error: str | None = None, status: int = 200
) -> Response:
    c = p.container
    pending = await pending_cosign(uows=c.uow, phi=c.phi, actor=p.actor)
    patient_ids = tuple(
        dict.fromkeys(i.evaluation.patient_id for i in pending if i.evaluation.patient_id)
    )
    patients: dict[str, PatientView] = {}
    for start in range(0, len(patient_ids), NAMES_PAGE):
        found = await search_patients(
            uows=c.uow,
            phi=c.phi,
            actor=p.actor,
            criteria=PatientSearch(ids=patient_ids[start : start + NAMES_PAGE]),
            limit=NAMES_PAGE,
        )
        patients.update((view.id, view) for view in found.items)
    reasons = _reason_names(p)
    kind, message = RESULTS.get(result or "", ("", ""))
    rows = [
        (
            item,
            stored_check(p, item.evaluation),
            order_summary(
                p,
                item.evaluation.drug,
                item.evaluation.dose_mg,
                item.evaluation.frequency,
                item.evaluation.indication,
            ),
        )
        for item in pending
    ]
    return p.render(
        "orders/sign_offs.html",
        status=status,
        items=rows,
        patients=patients,
        names=await _names(p, {i.override.created_by for i in pending}),
        reasons=reasons,
        labels=_labels(),
        result_kind=kind,
        result_message=i18n.gettext(message) if message else None,
        error=error,
    )


@router.get("/sign-offs")
async def sign_offs(p: Reviewer, result: str | None = None) -> Response:
    return await _queue(p, result=result)


@router.post("/sign-offs/{override_id}/cosign")
async def cosign(override_id: str, p: Reviewer) -> Response:
    try:
        await cosign_override(uows=p.container.uow, actor=p.actor, override_id=override_id[:36])
    except SelfCosignRefused:
        message = i18n.gettext(
            "You recorded this override yourself: the second sign-off must come from another "
            "pharmacist."
        )
        return await _queue(p, error=message, status=409)
    except OverrideNotPending:
        return p.redirect(SIGN_OFFS, result="not_pending")
    return p.redirect(SIGN_OFFS, result="cosigned")
