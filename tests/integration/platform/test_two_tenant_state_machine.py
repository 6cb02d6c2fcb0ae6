"""Two tenants, random sequences (issue 9 point 2): a hypothesis state machine drives the real app
in-process through patients (register, read, search, list, update — JSON API and FHIR),
encounters and clinical entries (observations, conditions, the medication list), notes, FHIR
reads and searches, exports (``Patient/$everything``, the de-identified research export),
decision support (record-mode evaluations, overrides, a pharmacist's co-sign), consent and the
audit API, by the staff of two organizations; and makes each organization's staff aim at the
other's ids — in paths, in bodies, in searches — which must answer exactly like ids that exist
nowhere (same status, same problem, nothing written).

After every step:
1. no response to one organization's member held the other's object ids, user ids or PHI
   (names, MRNs, national ids, phones, emails, addresses, encounter reasons, note text) unless
   the request itself carried the value; no response at all held an override comment
   (write-only free text); a research export holds none of its own organization's either;
2. each organization's audit trail holds exactly the rows the policy asks for what the machine
   did — one per write, one per read of PHI, a search or listing one per patient on the page,
   ``$everything`` one per part it reads (docs/contexts/records.md *Audit*, governance.md,
   cds.md, interop.md) — and nothing else: rows are counted per (organization, action, target,
   actor) against the model, so a missing, doubled, misplaced or unexpected row (a row for a
   refused request, an ``access.denied``) fails;
3. each organization's chain verifies.
Besides: no error answer (4xx) holds any PHI, not even the sender's own (refused registrations,
corrections and searches send some); a member without a permission gets the same 403 for its
own clinic's patient and the other's, with one ``access.denied`` row in its own clinic; the
same person registered in both clinics (same MRN, national id, name) is two patients, each
found only by its own clinic.

Defects the machine found are replayed as plain tests at the end of the module.

Runs on SQLite and PostgreSQL (the ``settings`` fixture). One event loop, one app and one owner
engine per test; every example makes two fresh organizations (unique slugs); the tables are
emptied at the end. Bounded for ``make test``; CLINICOS_ISOLATION_EXAMPLES and
CLINICOS_ISOLATION_STEPS make it longer, and then it prints what it ran (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

import pytest
from httpx import Response
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.config import Settings
from clinicos.governance import AuditEvent, verify_audit_chain
from clinicos.platform.db.engine import create_owner_engine
from tests.conftest import truncate_all
from tests.support.identity_fixtures import START, Harness, identity_settings, running_app
from tests.support.isolation import assert_not_found
from tests.support.records_fixtures import clinic
from tests.support.tenancy_fixtures import SignedIn

T = TypeVar("T")

EXAMPLES_ENV, STEPS_ENV = "CLINICOS_ISOLATION_EXAMPLES", "CLINICOS_ISOLATION_STEPS"
LONG_RUN = EXAMPLES_ENV in os.environ or STEPS_ENV in os.environ
MAX_EXAMPLES = int(os.environ.get(EXAMPLES_ENV, "8"))
STEPS = int(os.environ.get(STEPS_ENV, "25"))

API = "/api/v1"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MRN_SYSTEM = "https://clinicos.dev/fhir/sid/mrn"
NATIONAL_ID_SYSTEM = "https://clinicos.dev/fhir/sid/national-id"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ORGS = ("A", "B")
STAFF = ("clinician", "pharmacist", "researcher", "admin")
READERS = st.sampled_from(["clinician", "pharmacist"])
VIA = st.sampled_from(["json", "fhir"])

# Letters that are no hex digit: a token can hide in no UUID, hash or number.
TOKEN_LETTERS = "ghjkmnpqrstvwxyz"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# What $everything reads for a member holding clinical:read, patient:read and consent:read
# (clinician, pharmacist): the patient, then one page of each other type the facade serves.
EVERYTHING_AUDIT = (
    "records.patient.read",
    "records.encounter.list",
    "records.observation.list",
    "records.condition.list",
    "records.allergy.list",
    "records.prescription.list",
    "records.medication.list",
    "consent.read",
)
OBSERVATIONS = {  # LOINC code -> (category, unit, values drawn)
    "29463-7": ("vital-signs", "kg", (45, 52.2, 70, 96.5)),
    "2160-0": ("laboratory", "mg/dL", (3.6, 2, 1.2, 0.8)),
    "4548-4": ("laboratory", "%", (5.4, 7.9)),
}
CONDITIONS = {"I48.91": "atrial fibrillation", "R58": "haemorrhage", "I10": "hypertension"}
MEDICATIONS = {"703": "amiodarone", "6135": "ketoconazole", "6809": "metformin"}
ORDERS = (
    {"drug": "dabigatran", "dose_mg": 150, "frequency": "BID", "indication": "vte_treatment"},
    {"drug": "apixaban", "dose_mg": 5, "frequency": "BID", "indication": "nvaf"},
    {"drug": "rivaroxaban", "dose_mg": 20, "frequency": "QD", "indication": "vte_treatment"},
)
OVERRIDABLE = frozenset({"BLOCK", "WARN"})
RESEARCH_DATASETS = ("observations", "conditions", "medications")
KINDS = ("encounters", "observations", "conditions", "medications")
NOUNS = {
    "encounters": "encounter",
    "observations": "observation",
    "conditions": "condition",
    "medications": "medication",
}
FHIR_TYPES = {
    "encounters": "Encounter",
    "observations": "Observation",
    "conditions": "Condition",
    "medications": "MedicationStatement",
}

Demographics = tuple[str, str, str, date | None, bool]  # given, family, sex, birth, identifiers
_GIVEN = st.sampled_from(["Ana María", "José Luis", "Wiñay", "Ñusta"])
_FAMILY = st.sampled_from(["Quispe", "Mamani", "Condori", "Flores"])
_BIRTH = st.dates(date(1930, 1, 1), date(2004, 12, 31))
# Mostly records decision support can read (sex male/female, a birth date); some it cannot.
DEMOGRAPHICS = st.tuples(
    _GIVEN,
    _FAMILY,
    st.sampled_from(["female", "male", "female", "male", "other", "unknown"]),
    st.one_of(_BIRTH, _BIRTH, _BIRTH, st.none()),
    st.booleans(),
)
CDS_READY = st.tuples(_GIVEN, _FAMILY, st.sampled_from(["female", "male"]), _BIRTH, st.booleans())
# The first patients' weight and creatinine picks: low clearance mostly, so that evaluations
# BLOCK or WARN and overrides and co-signs happen.
RENAL = st.tuples(st.integers(0, 1), st.integers(0, 1))


def token() -> str:
    """A fresh value no other organization (or any other field) holds."""
    return "".join(secrets.choice(TOKEN_LETTERS) for _ in range(10))


def digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


# -- the model ---------------------------------------------------------------------------------


IDENTIFYING = ("mrn", "given", "family", "national_id", "phone", "email", "address_line")


@dataclass
class PatientModel:
    id: str
    org: str
    mrn: str
    given: str
    family: str
    sex: str
    birth_date: str | None
    national_id: str | None
    phone: str | None
    email: str | None
    address_line: str | None
    version: int = 1
    entries: dict[str, dict[str, str]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )  # kind -> entry id -> LOINC code (observations) or ""
    research: str | None = None  # the newest research consent decision

    def values(self) -> list[str]:
        found = [getattr(self, name) for name in IDENTIFYING]
        found.append(_digits_of(self.phone) if self.phone else None)
        return [v for v in found if v]

    def has_research_entries(self, datasets: set[str]) -> bool:
        return any(self.entries[name] for name in datasets)


def _digits_of(phone: str) -> str:
    return re.sub(r"\D", "", phone)


@dataclass
class Org:
    key: str
    id: str
    slug: str
    staff: dict[str, SignedIn]
    # Everything of this organization another one must never be shown (compared lower-case),
    # and of it the PHI, which no error message shows anyone.
    secrets: set[str] = field(default_factory=set)
    phi: set[str] = field(default_factory=set)
    patients: dict[str, PatientModel] = field(default_factory=dict)

    def keep(self, *values: str | None) -> None:
        self.secrets.update(v.lower() for v in values if v)

    def keep_phi(self, *values: str | None) -> None:
        self.keep(*values)
        self.phi.update(v.lower() for v in values if v)

    @property
    def clinician(self) -> SignedIn:
        return self.staff["clinician"]

    def first_patient(self) -> str:
        return next(iter(self.patients))


@dataclass(frozen=True)
class PatientRef:
    org: str
    id: str


@dataclass(frozen=True)
class EntryRef:
    org: str
    patient_id: str
    kind: str  # one of KINDS
    id: str


@dataclass(frozen=True)
class NoteRef:
    org: str
    patient_id: str
    id: str


@dataclass(frozen=True)
class Ref:
    """An evaluation (with its outcome), an override, a consent decision or a data-subject
    request. A refused request makes none: its rule returns ``multiple()``."""

    org: str
    id: str
    outcome: str = ""


@dataclass
class RunStats:
    sequences: int = 0
    steps: int = 0
    requests: int = 0
    probes: int = 0
    leaks: int = 0
    routes: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    def count(self, method: str, url: str, status: int) -> None:
        self.requests += 1
        self.routes[(method, UUID.sub("{id}", url.split("?", 1)[0]), status)] += 1

    def report(self, engine: str) -> str:
        lines = [
            f"two-tenant state machine on {engine}: {self.sequences} sequences, {self.steps} "
            f"steps, {self.requests} requests, {self.probes} cross-tenant probes, "
            f"{self.leaks} leaks"
        ]
        for (method, path, status), count in sorted(self.routes.items()):
            lines.append(f"  {count:6} {method} {path} -> {status}")
        return "\n".join(lines)


# -- what the other organization sends ---------------------------------------------------------


@dataclass(frozen=True)
class Req:
    """A request naming ids through ``{name}`` placeholders (in the path or the JSON body), so it
    can be sent once with the other organization's ids and once with ids that exist nowhere."""

    method: str
    url: str
    role: str = "clinician"
    json: Any = None
    fhir_body: bool = False

    def fill(self, ids: dict[str, str]) -> tuple[str, Any]:
        url, body = self.url, None if self.json is None else json.dumps(self.json)
        for name, value in ids.items():
            url = url.replace("{" + name + "}", value)
            body = body and body.replace("{" + name + "}", value)
        return url, None if body is None else json.loads(body)


def _fhir_observation(
    patient_id: str, code: str = "29463-7", value: float = 70, days_ago: int = 3
) -> dict[str, Any]:
    category, unit, _ = OBSERVATIONS[code]
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": (START - timedelta(days=days_ago)).isoformat(),
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


PATIENT_PROBES: dict[str, Req] = {
    "json_read": Req("GET", API + "/patients/{patient}"),
    "json_patch": Req("PATCH", API + "/patients/{patient}", json={"family_name": "Probe"}),
    "fhir_read": Req("GET", "/fhir/Patient/{patient}"),
    "fhir_put": Req(
        "PUT",
        "/fhir/Patient/{patient}",
        json={
            "resourceType": "Patient",
            "id": "{patient}",
            "identifier": [{"system": MRN_SYSTEM, "value": "PROBE-1"}],
            "name": [{"family": "Probe"}],
        },
        fhir_body=True,
    ),
    "fhir_by_id": Req("GET", "/fhir/Patient?_id={patient}"),
    "everything": Req("GET", "/fhir/Patient/{patient}/$everything", role="pharmacist"),
    "evaluate": Req(
        "POST", API + "/cds/evaluate", json={"patient_id": "{patient}", "order": ORDERS[0]}
    ),
    "consent_write": Req(
        "POST",
        API + "/patients/{patient}/consents",
        json={
            "purpose": "research",
            "decision": "granted",
            "method": "paper",
            "policy_version": "research-v1",
        },
    ),
    "consent_read": Req("GET", API + "/patients/{patient}/consents", role="pharmacist"),
    "fhir_consent_search": Req("GET", "/fhir/Consent?patient={patient}"),
    "observation_write": Req(
        "POST",
        API + "/patients/{patient}/observations",
        json={
            "code": "29463-7",
            "category": "vital-signs",
            "value": 70,
            "unit": "kg",
            "effective_at": START.isoformat(),
        },
    ),
    "observation_list": Req("GET", API + "/patients/{patient}/observations"),
    "fhir_observation_search": Req("GET", "/fhir/Observation?patient={patient}"),
    "encounter_list": Req("GET", API + "/patients/{patient}/encounters"),
    "note_write": Req(
        "POST", API + "/patients/{patient}/notes", json={"kind": "progress", "text": "probe"}
    ),
    "note_list": Req("GET", API + "/patients/{patient}/notes"),
    "data_request": Req("POST", API + "/patients/{patient}/data-requests", json={"kind": "access"}),
    "legal_holds": Req("GET", API + "/patients/{patient}/legal-holds", role="admin"),
    "prescription_write": Req(
        "POST",
        API + "/patients/{patient}/prescriptions",
        json={"code": "1364430", "display": "apixaban", "dose": 5, "dose_unit": "mg"},
    ),
    "fhir_observation_create": Req(
        "POST", "/fhir/Observation", json=_fhir_observation("{patient}"), fhir_body=True
    ),
    "fhir_transaction": Req(
        "POST",
        "/fhir",
        json={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": _fhir_observation("{patient}"),
                    "request": {"method": "POST", "url": "Observation"},
                }
            ],
        },
        fhir_body=True,
    ),
    "fhir_batch_put": Req(
        "POST",
        "/fhir",
        json={
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Patient",
                        "id": "{patient}",
                        "identifier": [{"system": MRN_SYSTEM, "value": "PROBE-2"}],
                        "name": [{"family": "Probe"}],
                    },
                    "request": {"method": "PUT", "url": "Patient/{patient}"},
                }
            ],
        },
        fhir_body=True,
    ),
}


def _taken_mrn(model: PatientModel, org: Org) -> None:
    model.mrn = next(iter(org.patients.values())).mrn


def _spaced_mrn(model: PatientModel, org: Org) -> None:
    model.mrn = f"MRN {token()}"


def _long_family(model: PatientModel, org: Org) -> None:
    model.family = f"{token()} " * 10 + token()


def _bad_email(model: PatientModel, org: Org) -> None:
    model.email = f"{token()}@@{token()}"


def _bad_phone(model: PatientModel, org: Org) -> None:
    model.phone = f"tel {token()}"


# Registrations refused for one wrong value each (what ``register_invalid`` sends).
FLAWS = {
    "mrn_taken": _taken_mrn,
    "mrn_with_space": _spaced_mrn,
    "family_too_long": _long_family,
    "email_malformed": _bad_email,
    "phone_malformed": _bad_phone,
}

# What a member may not do (role, permission refused, request): a 403 and ``access.denied``.
FORBIDDEN: dict[str, tuple[str, str, Req]] = {
    "researcher_reads_patient": (
        "researcher",
        "patient:read",
        Req("GET", API + "/patients/{patient}"),
    ),
    "pharmacist_edits_patient": (
        "pharmacist",
        "patient:write",
        Req("PATCH", API + "/patients/{patient}", json={"family_name": "Forbidden"}),
    ),
    "pharmacist_reads_notes": (
        "pharmacist",
        "note:read",
        Req("GET", API + "/patients/{patient}/notes"),
    ),
    "researcher_reads_everything": (
        "researcher",
        "clinical:read",
        Req("GET", "/fhir/Patient/{patient}/$everything"),
    ),
    "admin_evaluates": (
        "admin",
        "cds:evaluate",
        Req("POST", API + "/cds/evaluate", json={"patient_id": "{patient}", "order": ORDERS[0]}),
    ),
}
DATA_REQUEST_PROBES = {
    "read": Req("GET", API + "/data-requests/{request}", role="admin"),
    "access_report": Req("POST", API + "/data-requests/{request}/access-report", role="admin"),
    "export": Req("POST", API + "/data-requests/{request}/export", role="admin"),
    "erasure": Req("POST", API + "/data-requests/{request}/erasure", role="admin"),
    "decision": Req(
        "POST", API + "/data-requests/{request}/decision", role="admin", json={"decision": "accept"}
    ),
}
USER_PROBES = {
    "read": Req("GET", API + "/users/{user}", role="admin"),
    "disable": Req("POST", API + "/users/{user}/disable", role="admin"),
    "unlock": Req("POST", API + "/users/{user}/unlock", role="admin"),
    "mfa_reset": Req("POST", API + "/users/{user}/mfa/reset", role="admin"),
}

_PATCHES = {
    "encounters": {"type_display": "probe"},
    "observations": {"display": "probe"},
    "conditions": {"display": "probe"},
    "medications": {"display": "probe"},
}
_CORRECTIONS = {  # the data-subject correction naming an entry: target, field, value
    "observations": ("observation", "value", "72"),
    "conditions": ("condition", "clinical_status", "resolved"),
    "medications": ("medication_statement", "status", "stopped"),
}


def entry_probes(kind: str) -> dict[str, Req]:
    """What may name an entry of ``kind``: ``{patient}`` is the entry's patient or (to mix the
    prober's own patient with the other's entry) one of the prober's; ``{own}`` always the
    prober's."""
    path = API + "/patients/{patient}/" + kind + "/{entry}"
    probes = {
        "json_read": Req("GET", path),
        "json_patch": Req("PATCH", path, json=_PATCHES[kind]),
        "fhir_read": Req("GET", f"/fhir/{FHIR_TYPES[kind]}/{{entry}}"),
        "fhir_by_id": Req("GET", f"/fhir/{FHIR_TYPES[kind]}?_id={{entry}}"),
    }
    if kind == "observations":  # restated as the prober's own patient's result
        probes["fhir_put"] = Req(
            "PUT",
            "/fhir/Observation/{entry}",
            json={**_fhir_observation("{own}"), "id": "{entry}"},
            fhir_body=True,
        )
    if kind in _CORRECTIONS:
        target, name, value = _CORRECTIONS[kind]
        correction = {
            "target": target,
            "entry_id": "{entry}",
            "field": name,
            "proposed_value": value,
            "reason": "probe",
        }
        probes["correction"] = Req(
            "POST",
            API + "/patients/{own}/data-requests",
            json={"kind": "correction", "correction": correction},
        )
    if kind == "encounters":  # an entry of the prober's own patient naming the encounter
        probes["observation_in_encounter"] = Req(
            "POST",
            API + "/patients/{own}/observations",
            json={
                "code": "29463-7",
                "category": "vital-signs",
                "value": 70,
                "unit": "kg",
                "effective_at": START.isoformat(),
                "encounter_id": "{entry}",
            },
        )
        probes["note_in_encounter"] = Req(
            "POST",
            API + "/patients/{own}/notes",
            json={"kind": "progress", "text": "probe", "encounter_id": "{entry}"},
        )
    return probes


ENTRY_PROBE_NAMES = sorted({name for kind in KINDS for name in entry_probes(kind)})
NOTE_PROBES = {
    "read": Req("GET", API + "/patients/{patient}/notes/{note}"),
    "edit": Req("PATCH", API + "/patients/{patient}/notes/{note}", json={"text": "probe"}),
    "finalize": Req("POST", API + "/patients/{patient}/notes/{note}/finalize"),
    "discard": Req("POST", API + "/patients/{patient}/notes/{note}/discard"),
    "addendum": Req(
        "POST", API + "/patients/{patient}/notes/{note}/addenda", json={"text": "probe"}
    ),
}


# -- the app, one event loop for the whole test ----------------------------------------------


class World:
    """The running app (on one loop we own: one container, one HTTP client) and an owner engine
    to count audit rows past row-level security. Rate limits are off: the machine sends a few
    hundred requests a minute per member, which is not what this test is about."""

    def __init__(self, settings: Settings) -> None:
        self.runner = asyncio.Runner()
        self.stack = AsyncExitStack()
        try:
            self.harness: Harness = self.run(
                self.stack.enter_async_context(
                    running_app(identity_settings(settings, rate_limit={"enabled": False}))
                )
            )
            self.owner: AsyncEngine = create_owner_engine(self.harness.container.settings)
        except BaseException:
            self.runner.close()
            raise

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def close(self) -> None:
        try:
            self.run(truncate_all(self.harness.container))
            self.run(self.owner.dispose())
            self.run(self.stack.aclose())
        finally:
            self.runner.close()


# -- the machine --------------------------------------------------------------------------------


class TwoTenants(RuleBasedStateMachine):
    patients = Bundle("patients")
    entries = Bundle("entries")
    notes = Bundle("notes")
    evaluations = Bundle("evaluations")
    overrides = Bundle("overrides")
    consents = Bundle("consents")
    data_requests = Bundle("data_requests")

    def __init__(self, world: World, stats: RunStats) -> None:
        super().__init__()
        self.world = world
        self.stats = stats
        self.client = world.harness.client
        self.orgs: dict[str, Org] = {}
        self.expected: Counter[tuple[str | None, ...]] = Counter()
        self.write_only: set[str] = set()  # override comments: returned to nobody
        self.override_status: dict[str, str] = {}
        self.overridden: set[str] = set()  # evaluation ids
        self.note_status: dict[str, str] = {}
        self._initial_check = True

    # -- plumbing ------------------------------------------------------------------------------

    def other(self, key: str) -> Org:
        return self.orgs["B" if key == "A" else "A"]

    def patient(self, ref: PatientRef | EntryRef | NoteRef) -> PatientModel:
        patient_id = ref.id if isinstance(ref, PatientRef) else ref.patient_id
        return self.orgs[ref.org].patients[patient_id]

    def call(
        self,
        org: Org,
        who: SignedIn,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        fhir_body: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request as ``who`` (a member of ``org``); its answer is checked at once for what
        it must not hold (invariant 1)."""
        headers = {**who.headers, **(headers or {})}
        kwargs: dict[str, Any] = {}
        sent = url
        if json_body is not None:
            kwargs["content"] = json.dumps(json_body)
            headers["Content-Type"] = "application/fhir+json" if fhir_body else "application/json"
            sent += kwargs["content"]
        if form is not None:
            kwargs["data"] = form
            sent += json.dumps(form)
        # Time moves on between requests, as it does for real: "the newest decision" (consent)
        # is told by when it was recorded, and two at the very same instant would tie.
        self.world.harness.clock.advance(timedelta(seconds=1))
        response = self.world.run(self.client.request(method, url, headers=headers, **kwargs))
        self.stats.count(method, url, response.status_code)
        text, sent = response.text.lower(), sent.lower()
        other = self.other(org.key)
        leaked = sorted(s for s in other.secrets if s in text and s not in sent)
        leaked += sorted(s for s in self.write_only if s in text)
        if response.status_code >= 400:  # PHI is never in an error message, not even the sender's
            leaked += sorted(v for o in self.orgs.values() for v in o.phi if v in text)
        if leaked:
            self.stats.leaks += len(leaked)
            raise AssertionError(
                f"{method} {url} ({response.status_code}) showed {org.key}'s member "
                f"{len(leaked)} value(s) of {other.key}, override comments or PHI in an "
                f"error: {leaked[:5]}"
            )
        return response

    def ok(self, response: Response, status: int = 200) -> Any:
        assert response.status_code == status, (response.request.url.path, response.text)
        return response.json()

    def refused(self, response: Response, status: int, *codes: str) -> None:
        """A problem (or, under /fhir, an OperationOutcome) with this status and one of these
        codes."""
        body = self.ok(response, status)
        if body.get("resourceType") == "OperationOutcome":
            code = body["issue"][0]["details"]["coding"][0]["code"]
        else:
            code = body["code"]
        assert code in codes, body

    def audited(self, org: Org, who: SignedIn, action: str, target_type: str, target: str) -> None:
        self.expected[(org.id, action, target_type, target, who.member.user_id)] += 1

    async def _audit_rows(self) -> Counter[tuple[str | None, ...]]:
        columns = (
            AuditEvent.organization_id,
            AuditEvent.action,
            AuditEvent.target_type,
            AuditEvent.target_id,
            AuditEvent.actor_id,
        )
        async with self.world.owner.connect() as conn:
            rows = await conn.execute(
                select(*columns, func.count())
                .where(AuditEvent.organization_id.in_([org.id for org in self.orgs.values()]))
                .group_by(*columns)
            )
            return Counter({tuple(row[:5]): int(row[5]) for row in rows})

    async def _broken_chains(self) -> list[str]:
        broken = []
        for org in self.orgs.values():
            async with self.world.harness.container.uow(org.id) as uow:
                report = await verify_audit_chain(uow, organization_id=org.id)
            if not report.ok:
                broken.append(f"{org.key}: seq {report.first_bad_seq} ({report.reason})")
        return broken

    # -- the two organizations -----------------------------------------------------------------

    @initialize(
        target=patients,
        first=st.tuples(VIA, CDS_READY, RENAL),
        second=st.tuples(VIA, CDS_READY, RENAL),
    )
    def two_organizations(
        self,
        first: tuple[str, Demographics, tuple[int, int]],
        second: tuple[str, Demographics, tuple[int, int]],
    ) -> MultipleResults[PatientRef]:
        """Two fresh organizations with a clinician, a pharmacist, a researcher and an admin
        each, and one patient each with a weight and a creatinine, so decision support has
        records to read from the first step."""
        harness = self.world.harness
        for key in ORGS:
            slug = f"org-{key.lower()}-{uuid.uuid4().hex[:10]}"
            staff = self.world.run(clinic(harness.container, harness.client, slug, *STAFF))
            org = Org(key=key, id=staff["admin"].member.organization_id, slug=slug, staff=staff)
            org.keep(org.id, slug, *(s.member.user_id for s in staff.values()))
            org.keep(*(s.member.email for s in staff.values()))
            self.orgs[key] = org
        # What sign-up and sign-in wrote is the baseline; from here on the model counts.
        self.expected = self.world.run(self._audit_rows())
        self.stats.sequences += 1
        refs = []
        for key, (via, demographics, (weight, creatinine)) in zip(
            ORGS, (first, second), strict=True
        ):
            ref = self._register(key, via, demographics)
            self._observe(ref, "29463-7", weight, 3, via)
            self._observe(ref, "2160-0", creatinine, 3, via)
            refs.append(ref)
        return multiple(*refs)

    # -- patients ------------------------------------------------------------------------------

    @rule(target=patients, org=st.sampled_from(ORGS), via=VIA, demographics=DEMOGRAPHICS)
    def register_patient(self, org: str, via: str, demographics: Demographics) -> PatientRef:
        return self._register(org, via, demographics)

    def _register(
        self, org: str, via: str, demographics: Demographics, like: PatientModel | None = None
    ) -> PatientRef:
        owner = self.orgs[org]
        given, family, sex, birth, identified = demographics
        model = PatientModel(
            id="",
            org=org,
            mrn=f"MRN-{token()}",
            given=f"{given} {token()}",
            family=f"{family} {token()}",
            sex=sex,
            birth_date=birth.isoformat() if birth else None,
            national_id=f"{digits(9)} {token()}" if identified else None,
            phone=f"+591 7{digits(7)}" if identified else None,
            email=f"{token()}@example.org" if identified else None,
            address_line=f"Calle {token()} 12" if identified else None,
        )
        if like is not None:  # the same person's identifiers, registered in both clinics
            for name in IDENTIFYING:
                setattr(model, name, getattr(like, name))
            other = self.other(org)
            other.secrets.difference_update(v.lower() for v in like.values())
        else:
            owner.keep_phi(*model.values())
        if via == "json":
            response = self.call(
                owner, owner.clinician, "POST", f"{API}/patients", json_body=_json_patient(model)
            )
        else:
            response = self.call(
                owner,
                owner.clinician,
                "POST",
                "/fhir/Patient",
                json_body=_fhir_patient(model),
                fhir_body=True,
            )
        model.id = self.ok(response, 201)["id"]
        owner.keep(model.id)
        owner.patients[model.id] = model
        self.audited(owner, owner.clinician, "records.patient.create", "patient", model.id)
        return PatientRef(org, model.id)

    @rule(org=st.sampled_from(ORGS), flaw=st.sampled_from(sorted(FLAWS)), via=VIA)
    def register_invalid(self, org: str, flaw: str, via: str) -> None:
        """A registration the API refuses (a 422, or a 409 for an MRN the clinic holds): the
        answer names the field, never the value, and nothing is stored or audited."""
        owner = self.orgs[org]
        model = PatientModel(
            id="",
            org=org,
            mrn=f"MRN-{token()}",
            given=f"Rosa {token()}",
            family=f"Choque {token()}",
            sex="female",
            birth_date="1970-01-01",
            national_id=f"{digits(9)} {token()}",
            phone=f"+591 7{digits(7)}",
            email=f"{token()}@example.org",
            address_line=None,
        )
        FLAWS[flaw](model, owner)
        # A value the other clinic also holds (the same person registered there) is not one it
        # must never see; it is still one no error may show.
        elsewhere = {v.lower() for p in self.other(org).patients.values() for v in p.values()}
        owner.keep_phi(*(v for v in model.values() if v.lower() not in elsewhere))
        owner.phi.update(v.lower() for v in model.values())
        if via == "json":
            response = self.call(
                owner, owner.clinician, "POST", f"{API}/patients", json_body=_json_patient(model)
            )
        else:
            response = self.call(
                owner,
                owner.clinician,
                "POST",
                "/fhir/Patient",
                json_body=_fhir_patient(model),
                fhir_body=True,
            )
        status = 409 if flaw == "mrn_taken" else 422
        assert response.status_code == status, (flaw, via, response.text)

    @rule(target=patients, ref=patients, via=VIA)
    def register_same_person_elsewhere(
        self, ref: PatientRef, via: str
    ) -> PatientRef | MultipleResults[PatientRef]:
        """The other clinic registers the same person (same MRN, national id, name, phone,
        email): MRNs are unique per organization, so this is a 201 — a 409 would tell the
        second clinic that the first one holds this MRN."""
        model = self.patient(ref)
        if any(p.mrn == model.mrn for p in self.other(ref.org).patients.values()):
            return multiple()  # registered there already
        birth = date.fromisoformat(model.birth_date) if model.birth_date else None
        demographics: Demographics = ("", "", model.sex, birth, True)
        return self._register(self.other(ref.org).key, via, demographics, like=model)

    @rule(ref=patients, via=st.sampled_from(["json", "fhir", "fhir_id"]), role=READERS)
    def read_patient(self, ref: PatientRef, via: str, role: str) -> None:
        owner, model = self.orgs[ref.org], self.patient(ref)
        who = owner.staff[role]
        if via == "json":
            body = self.ok(self.call(owner, who, "GET", f"{API}/patients/{model.id}"))
            shown = (body["mrn"], body["family_name"], body["given_name"], body["national_id"])
            assert shown == (model.mrn, model.family, model.given, model.national_id)
            assert body["version"] == model.version
        else:
            url = f"/fhir/Patient/{model.id}" if via == "fhir" else f"/fhir/Patient?_id={model.id}"
            body = self.ok(self.call(owner, who, "GET", url))
            if via == "fhir_id":
                [entry] = body["entry"]
                body = entry["resource"]
            assert body["identifier"][0]["value"] == model.mrn
            assert body["name"][0]["family"] == model.family
            assert body["meta"]["versionId"] == str(model.version)
        # ``_id`` is a search of the patients (one row per patient found), not a read.
        action = "records.patient.search" if via == "fhir_id" else "records.patient.read"
        self.audited(owner, who, action, "patient", model.id)

    @rule(
        org=st.sampled_from(ORGS),
        ref=patients,
        criterion=st.sampled_from(["mrn", "name", "family", "national_id", "phone", "email"]),
        via=VIA,
    )
    def search_patients(self, org: str, ref: PatientRef, criterion: str, via: str) -> None:
        """A search for one patient's value, by either organization: each finds exactly its own
        patients holding the value (none, when the patient is the other's)."""
        searcher = self.orgs[org]

        def value_of(patient: PatientModel) -> str | None:
            if criterion == "name":
                return f"{patient.given} {patient.family}"
            return getattr(patient, criterion)

        value = value_of(self.patient(ref))
        if value is None:
            criterion, value = "mrn", self.patient(ref).mrn
        who = searcher.clinician
        if via == "json":
            key = "family_name" if criterion == "family" else criterion
            body = self.ok(
                self.call(
                    searcher,
                    who,
                    "POST",
                    f"{API}/patients/search",
                    json_body={key: value, "limit": 100},
                )
            )
            found = [item["id"] for item in body["items"]]
        else:
            form = {
                "mrn": {"identifier": f"{MRN_SYSTEM}|{value}"},
                "national_id": {"identifier": f"{NATIONAL_ID_SYSTEM}|{value}"},
            }.get(criterion, {criterion: value})
            form["_count"] = "100"
            body = self.ok(self.call(searcher, who, "POST", "/fhir/Patient/_search", form=form))
            found = [e["resource"]["id"] for e in body.get("entry", ())]
        holders = {p.id for p in searcher.patients.values() if value_of(p) == value}
        assert sorted(found) == sorted(holders), (criterion, via)
        for patient_id in found:
            self.audited(searcher, who, "records.patient.search", "patient", patient_id)

    @rule(org=st.sampled_from(ORGS), role=READERS)
    def list_patients(self, org: str, role: str) -> None:
        owner = self.orgs[org]
        who = owner.staff[role]
        body = self.ok(self.call(owner, who, "GET", f"{API}/patients?limit=100"))
        found = [item["id"] for item in body["items"]]
        assert sorted(found) == sorted(owner.patients), "exactly the organization's patients"
        for patient_id in found:
            self.audited(owner, who, "records.patient.search", "patient", patient_id)

    @rule(
        ref=patients,
        via=VIA,
        change=st.sampled_from(["family", "given", "mrn", "national_id", "phone", "email"]),
        stale=st.booleans(),
    )
    def update_patient(self, ref: PatientRef, via: str, change: str, stale: bool) -> None:
        """A change of one identifier; ``stale``: sent with a version read before another
        change — a 409 that changes and audits nothing."""
        owner, model = self.orgs[ref.org], self.patient(ref)
        if stale:
            old = model.version - 1 if model.version > 1 else model.version + 1
            new = f"Stale {token()}"
            owner.keep_phi(new)
            if via == "json":
                response = self.call(
                    owner,
                    owner.clinician,
                    "PATCH",
                    f"{API}/patients/{model.id}",
                    json_body={"family_name": new, "version": old},
                )
                self.refused(response, 409, "version_conflict")
            else:
                stale_model = PatientModel(**{**model.__dict__, "family": new})
                response = self.call(
                    owner,
                    owner.clinician,
                    "PUT",
                    f"/fhir/Patient/{model.id}",
                    json_body={**_fhir_patient(stale_model), "id": model.id},
                    fhir_body=True,
                    headers={"If-Match": f'W/"{old}"'},
                )
                self.refused(response, 409, "version_conflict")
            return
        new = {
            "family": f"Vargas {token()}",
            "given": f"Rosa {token()}",
            "mrn": f"MRN-{token()}",
            "national_id": f"{digits(9)} {token()}",
            "phone": f"+591 6{digits(7)}",
            "email": f"{token()}@example.org",
        }[change]
        owner.keep_phi(new, _digits_of(new) if change == "phone" else None)
        setattr(model, change, new)
        if via == "json":
            key = {"family": "family_name", "given": "given_name"}.get(change, change)
            body = self.ok(
                self.call(
                    owner,
                    owner.clinician,
                    "PATCH",
                    f"{API}/patients/{model.id}",
                    json_body={key: new, "version": model.version},
                )
            )
            version = body["version"]
        else:  # a FHIR update replaces the resource: every value is restated
            body = self.ok(
                self.call(
                    owner,
                    owner.clinician,
                    "PUT",
                    f"/fhir/Patient/{model.id}",
                    json_body={**_fhir_patient(model), "id": model.id},
                    fhir_body=True,
                )
            )
            version = int(body["meta"]["versionId"])
        assert version == model.version + 1
        model.version = version
        self.audited(owner, owner.clinician, "records.patient.update", "patient", model.id)

    # -- encounters and clinical entries -------------------------------------------------------

    def _observe(self, ref: PatientRef, code: str, pick: int, days_ago: int, via: str) -> EntryRef:
        owner, model = self.orgs[ref.org], self.patient(ref)
        category, unit, values = OBSERVATIONS[code]
        value = values[pick % len(values)]
        when = (START - timedelta(days=days_ago)).isoformat()
        if via == "json":
            body = {
                "code": code,
                "category": category,
                "value": value,
                "unit": unit,
                "effective_at": when,
            }
            response = self.call(
                owner,
                owner.clinician,
                "POST",
                f"{API}/patients/{model.id}/observations",
                json_body=body,
            )
        else:
            resource = _fhir_observation(model.id, code, value, days_ago)
            response = self.call(
                owner,
                owner.clinician,
                "POST",
                "/fhir/Observation",
                json_body=resource,
                fhir_body=True,
            )
        return self._entry_made(ref, "observations", response, code)

    def _entry_made(
        self, ref: PatientRef, kind: str, response: Response, code: str = ""
    ) -> EntryRef:
        owner, model = self.orgs[ref.org], self.patient(ref)
        entry_id = self.ok(response, 201)["id"]
        owner.keep(entry_id)
        model.entries[kind][entry_id] = code
        self.audited(owner, owner.clinician, f"records.{NOUNS[kind]}.create", "patient", model.id)
        return EntryRef(ref.org, model.id, kind, entry_id)

    @rule(
        target=entries,
        ref=patients,
        code=st.sampled_from(sorted(OBSERVATIONS)),
        pick=st.integers(0, 3),
        days_ago=st.integers(1, 20),
        via=VIA,
    )
    def record_observation(
        self, ref: PatientRef, code: str, pick: int, days_ago: int, via: str
    ) -> EntryRef:
        return self._observe(ref, code, pick, days_ago, via)

    @rule(target=entries, ref=patients, icd10=st.sampled_from(sorted(CONDITIONS)))
    def record_condition(self, ref: PatientRef, icd10: str) -> EntryRef:
        owner = self.orgs[ref.org]
        body = {"icd10_code": icd10, "display": CONDITIONS[icd10], "onset_date": "2020-05-04"}
        response = self.call(
            owner, owner.clinician, "POST", f"{API}/patients/{ref.id}/conditions", json_body=body
        )
        return self._entry_made(ref, "conditions", response)

    @rule(target=entries, ref=patients, rxcui=st.sampled_from(sorted(MEDICATIONS)))
    def record_medication(self, ref: PatientRef, rxcui: str) -> EntryRef:
        owner = self.orgs[ref.org]
        body = {
            "code_system": RXNORM,
            "code": rxcui,
            "display": MEDICATIONS[rxcui],
            "dose": 200,
            "dose_unit": "mg",
            "frequency": "QD",
            "route": "oral",
        }
        response = self.call(
            owner, owner.clinician, "POST", f"{API}/patients/{ref.id}/medications", json_body=body
        )
        return self._entry_made(ref, "medications", response)

    @rule(target=entries, ref=patients, days_ago=st.integers(0, 30))
    def record_encounter(self, ref: PatientRef, days_ago: int) -> EntryRef:
        owner = self.orgs[ref.org]
        reason = f"Control; acompaña {token()}"
        owner.keep_phi(reason)
        body = {
            "status": "finished",
            "class_code": "AMB",
            "reason_text": reason,
            "period_start": (START - timedelta(days=days_ago)).isoformat(),
        }
        response = self.call(
            owner, owner.clinician, "POST", f"{API}/patients/{ref.id}/encounters", json_body=body
        )
        return self._entry_made(ref, "encounters", response)

    @rule(entry=entries, via=st.sampled_from(["json", "fhir", "fhir_id"]), role=READERS)
    def read_entry(self, entry: EntryRef, via: str, role: str) -> None:
        owner = self.orgs[entry.org]
        who = owner.staff[role]
        url = {
            "json": f"{API}/patients/{entry.patient_id}/{entry.kind}/{entry.id}",
            "fhir": f"/fhir/{FHIR_TYPES[entry.kind]}/{entry.id}",
            "fhir_id": f"/fhir/{FHIR_TYPES[entry.kind]}?_id={entry.id}",
        }[via]
        body = self.ok(self.call(owner, who, "GET", url))
        if via == "fhir_id":
            [found] = body["entry"]
            body = found["resource"]
        assert body["id"] == entry.id
        self.audited(owner, who, f"records.{NOUNS[entry.kind]}.read", "patient", entry.patient_id)

    @rule(ref=patients, kind=st.sampled_from(KINDS), via=VIA, role=READERS)
    def list_entries(self, ref: PatientRef, kind: str, via: str, role: str) -> None:
        owner, model = self.orgs[ref.org], self.patient(ref)
        who = owner.staff[role]
        if via == "json":
            url = f"{API}/patients/{model.id}/{kind}?limit=100"
            found = {item["id"] for item in self.ok(self.call(owner, who, "GET", url))["items"]}
        else:
            url = f"/fhir/{FHIR_TYPES[kind]}?patient={model.id}&_count=100"
            body = self.ok(self.call(owner, who, "GET", url))
            found = {e["resource"]["id"] for e in body.get("entry", ())}
        assert found == set(model.entries[kind])
        self.audited(owner, who, f"records.{NOUNS[kind]}.list", "patient", model.id)

    @rule(entry=entries, pick=st.integers(0, 3))
    def amend_entry(self, entry: EntryRef, pick: int) -> None:
        """A new value of a result (it becomes amended), or a new display of another entry."""
        owner, model = self.orgs[entry.org], self.patient(entry)
        if entry.kind == "observations":
            values = OBSERVATIONS[model.entries["observations"][entry.id]][2]
            change: dict[str, Any] = {"value": values[pick % len(values)]}
        else:
            change = dict(_PATCHES[entry.kind])
            change[next(iter(change))] = f"revisado {pick}"
        url = f"{API}/patients/{entry.patient_id}/{entry.kind}/{entry.id}"
        self.ok(self.call(owner, owner.clinician, "PATCH", url, json_body=change))
        noun = NOUNS[entry.kind]
        self.audited(owner, owner.clinician, f"records.{noun}.update", "patient", model.id)

    # -- notes ---------------------------------------------------------------------------------

    @rule(target=notes, ref=patients, kind=st.sampled_from(["progress", "consult", "nursing"]))
    def write_note(self, ref: PatientRef, kind: str) -> NoteRef:
        owner = self.orgs[ref.org]
        text = f"Refiere mareos; vive con {token()}, teléfono del hijo {digits(8)}."
        owner.keep_phi(text)
        body = self.ok(
            self.call(
                owner,
                owner.clinician,
                "POST",
                f"{API}/patients/{ref.id}/notes",
                json_body={"kind": kind, "text": text},
            ),
            201,
        )
        owner.keep(body["id"])
        self.note_status[body["id"]] = "draft"
        self.audited(owner, owner.clinician, "records.note.create", "patient", ref.id)
        return NoteRef(ref.org, ref.id, body["id"])

    @rule(note=notes, action=st.sampled_from(["read", "finalize", "list"]))
    def use_note(self, note: NoteRef, action: str) -> None:
        owner = self.orgs[note.org]
        base = f"{API}/patients/{note.patient_id}/notes"
        if action == "read":
            body = self.ok(self.call(owner, owner.clinician, "GET", f"{base}/{note.id}"))
            assert body["status"] == self.note_status[note.id]
        elif action == "list":
            body = self.ok(self.call(owner, owner.clinician, "GET", f"{base}?limit=100"))
            assert note.id in {item["id"] for item in body["items"]}
        else:
            response = self.call(owner, owner.clinician, "POST", f"{base}/{note.id}/finalize")
            if self.note_status[note.id] == "final":
                self.refused(response, 409, "note_not_editable")
                return  # refused: no audit row
            assert self.ok(response)["status"] == "final"
            self.note_status[note.id] = "final"
        self.audited(owner, owner.clinician, f"records.note.{action}", "patient", note.patient_id)

    # -- exports -------------------------------------------------------------------------------

    @rule(ref=patients, role=READERS)
    def everything(self, ref: PatientRef, role: str) -> None:
        owner, model = self.orgs[ref.org], self.patient(ref)
        who = owner.staff[role]
        body = self.ok(self.call(owner, who, "GET", f"/fhir/Patient/{model.id}/$everything"))
        found = {e["resource"]["id"] for e in body.get("entry", ())}
        held = {model.id}.union(*model.entries.values())
        assert held <= found, "everything held about the patient is in the bundle"
        for action in EVERYTHING_AUDIT:
            self.audited(owner, who, action, "patient", model.id)

    @rule(
        target=consents,
        ref=patients,
        decision=st.sampled_from(["granted", "granted", "denied", "revoked"]),
    )
    def research_consent(self, ref: PatientRef, decision: str) -> Ref | MultipleResults[Ref]:
        owner, model = self.orgs[ref.org], self.patient(ref)
        body = {
            "purpose": "research",
            "decision": decision,
            "method": "paper",
            "policy_version": "research-v1",
        }
        url = f"{API}/patients/{model.id}/consents"
        response = self.call(owner, owner.clinician, "POST", url, json_body=body)
        if decision == "revoked" and model.research != "granted":
            self.refused(response, 409, "conflict")
            return multiple()
        consent_id = self.ok(response, 201)["id"]
        owner.keep(consent_id)
        model.research = decision
        self.audited(owner, owner.clinician, f"consent.{decision}", "patient", model.id)
        return Ref(ref.org, consent_id)

    @rule(
        org=st.sampled_from(ORGS),
        datasets=st.sets(st.sampled_from(RESEARCH_DATASETS), min_size=1),
    )
    def research_export(self, org: str, datasets: set[str]) -> None:
        owner = self.orgs[org]
        who = owner.staff["researcher"]
        request: dict[str, Any] = {"datasets": sorted(datasets), "date_precision": "year"}
        if "observations" in datasets:
            request["loinc_codes"] = sorted(OBSERVATIONS)
        response = self.call(owner, who, "POST", f"{API}/research/exports", json_body=request)
        body = self.ok(response)
        candidates = [p for p in owner.patients.values() if p.has_research_entries(datasets)]
        included = [p for p in candidates if p.research == "granted"]
        assert body["patients_included"] == len(included), body
        assert body["patients_excluded_for_consent"] == len(candidates) - len(included), body
        text = response.text.lower()  # de-identified: none of its own clinic's values either
        own = [s for s in owner.secrets if s in text]
        assert not own, f"the research export holds identifying values: {own[:5]}"
        owner.keep(body["export_id"])
        for patient in included:
            self.audited(owner, who, "research.extract", "patient", patient.id)
        self.audited(owner, who, "research.export", "research_export", body["export_id"])

    # -- decision support ----------------------------------------------------------------------

    @rule(
        target=evaluations,
        ref=patients,
        order=st.sampled_from(ORDERS),
        role=READERS,
        then=st.sampled_from(["nothing", "override", "override_and_cosign"]),
    )
    def evaluate(
        self, ref: PatientRef, order: dict[str, Any], role: str, then: str
    ) -> Ref | MultipleResults[Ref]:
        """A record-mode check; ``then``: the clinician overrides it at once (a BLOCK or WARN),
        and a pharmacist co-signs (a BLOCK) — the path a refused order takes."""
        owner, model = self.orgs[ref.org], self.patient(ref)
        who = owner.staff[role]
        response = self.call(
            owner,
            who,
            "POST",
            f"{API}/cds/evaluate",
            json_body={"patient_id": model.id, "order": order},
        )
        if model.sex not in ("male", "female") or model.birth_date is None:
            self.refused(response, 409, "cds_record_incomplete")
            return multiple()  # nothing recorded
        body = self.ok(response)
        owner.keep(body["evaluation_id"])
        self.audited(owner, who, "cds.evaluate", "patient", model.id)
        evaluation = Ref(ref.org, body["evaluation_id"], body["outcome"])
        if then == "nothing":
            return evaluation
        override = self._override(evaluation, "patient_tolerating", commented=True)
        if override is not None and then == "override_and_cosign":
            self._cosign(override)
        return evaluation

    @rule(
        target=overrides,
        evaluation=evaluations,
        reason=st.sampled_from(["benefit_outweighs_risk", "patient_tolerating", "other"]),
        commented=st.booleans(),
    )
    def override(self, evaluation: Ref, reason: str, commented: bool) -> Ref | MultipleResults[Ref]:
        override = self._override(evaluation, reason, commented)
        return multiple() if override is None else override

    def _override(self, evaluation: Ref, reason: str, commented: bool) -> Ref | None:
        owner = self.orgs[evaluation.org]
        request: dict[str, Any] = {"evaluation_id": evaluation.id, "reason_code": reason}
        if commented or reason == "other":
            secret = token()
            self.write_only.add(secret)
            request["comment"] = f"Paciente {secret} sangró la semana pasada"
        response = self.call(
            owner, owner.clinician, "POST", f"{API}/cds/overrides", json_body=request
        )
        if evaluation.outcome not in OVERRIDABLE:
            self.refused(response, 409, "cds_evaluation_not_overridable")
            return None
        if evaluation.id in self.overridden:
            self.refused(response, 409, "cds_override_exists")
            return None
        self.overridden.add(evaluation.id)
        body = self.ok(response, 201)
        assert body["status"] == ("pending_cosign" if evaluation.outcome == "BLOCK" else "approved")
        self.override_status[body["override_id"]] = body["status"]
        owner.keep(body["override_id"])
        self.audited(owner, owner.clinician, "cds.override", "cds_override", body["override_id"])
        return Ref(evaluation.org, body["override_id"])

    @rule(override=overrides)
    def cosign(self, override: Ref) -> None:
        self._cosign(override)

    def _cosign(self, override: Ref) -> None:
        owner = self.orgs[override.org]
        who = owner.staff["pharmacist"]
        response = self.call(owner, who, "POST", f"{API}/cds/overrides/{override.id}/cosign")
        if self.override_status[override.id] != "pending_cosign":
            self.refused(response, 409, "cds_override_not_pending")
            return
        body = self.ok(response)
        assert body["status"] == "approved" and body["cosigned_by"] == who.member.user_id
        self.override_status[override.id] = "approved"
        self.audited(owner, who, "cds.override_cosign", "cds_override", override.id)

    # -- data-subject requests and members ----------------------------------------------------

    @rule(target=data_requests, ref=patients, read_first=st.booleans())
    def access_request(self, ref: PatientRef, read_first: bool) -> Ref:
        """A patient asks what is held about them: taken by the clinician, answered by the
        admin with the record and its accesses (the audit rows naming the patient)."""
        owner, model = self.orgs[ref.org], self.patient(ref)
        clinician, admin = owner.clinician, owner.staff["admin"]
        url = f"{API}/patients/{model.id}/data-requests"
        created = self.ok(
            self.call(owner, clinician, "POST", url, json_body={"kind": "access"}), 201
        )
        owner.keep(created["id"])
        self.audited(owner, clinician, "dsr.access.receive", "patient", model.id)
        if read_first:
            read = self.ok(self.call(owner, admin, "GET", f"{API}/data-requests/{created['id']}"))
            assert read["patient_id"] == model.id
            self.audited(owner, admin, "dsr.request.read", "patient", model.id)
        url = f"{API}/data-requests/{created['id']}/access-report"
        report = self.ok(self.call(owner, admin, "POST", url, json_body={}))
        resources = [e["resource"] for e in report["bundle"].get("entry", ())]
        accesses = [r for r in resources if r["resourceType"] == "AuditEvent"]
        held = sum(n for k, n in self.expected.items() if k[0] == owner.id and k[3] == model.id)
        # The report's own read of the record may or may not be among the accesses it lists.
        assert held <= len(accesses) <= held + 1, (len(accesses), held)
        assert model.id in {r["id"] for r in resources if r["resourceType"] == "Patient"}
        self.audited(owner, admin, "records.patient.subject_read", "patient", model.id)
        self.audited(owner, admin, "dsr.access.report", "patient", model.id)
        return Ref(ref.org, created["id"])

    @rule(
        ref=patients,
        name=st.sampled_from(["family_name", "phone", "email"]),
        well_formed=st.booleans(),
    )
    def correction_request(self, ref: PatientRef, name: str, well_formed: bool) -> None:
        """The patient asks to correct a demographic field; the admin accepts. A value the JSON
        API would refuse is refused when the request is taken (422 naming the field): the
        correction is another door into the same record, with the same rules."""
        owner, model = self.orgs[ref.org], self.patient(ref)
        clinician, admin = owner.clinician, owner.staff["admin"]
        value = {
            ("family_name", True): f"Huanca {token()}",
            ("family_name", False): f"{token()} " * 10 + token(),
            ("phone", True): f"+591 4{digits(7)}",
            ("phone", False): f"llamar a {token()}",
            ("email", True): f"{token()}@example.org",
            ("email", False): f"{token()}@@{token()}",
        }[(name, well_formed)]
        reason = f"Mi nombre es {token()}"
        owner.keep_phi(
            value, reason, _digits_of(value) if name == "phone" and well_formed else None
        )
        correction = {
            "target": "demographics",
            "field": name,
            "proposed_value": value,
            "reason": reason,
        }
        response = self.call(
            owner,
            clinician,
            "POST",
            f"{API}/patients/{model.id}/data-requests",
            json_body={"kind": "correction", "correction": correction},
        )
        if not well_formed:
            self.refused(response, 422, "validation_failed")
            return
        created = self.ok(response, 201)
        owner.keep(created["id"])
        self.audited(owner, clinician, "dsr.correction.receive", "patient", model.id)
        url = f"{API}/data-requests/{created['id']}/decision"
        decided = self.ok(self.call(owner, admin, "POST", url, json_body={"decision": "accept"}))
        assert decided["status"] == "completed", decided
        setattr(model, {"family_name": "family"}.get(name, name), value)
        model.version += 1
        self.audited(owner, admin, "records.patient.update", "patient", model.id)
        self.audited(owner, admin, "dsr.correction.accept", "patient", model.id)

    @rule(org=st.sampled_from(ORGS))
    def list_members(self, org: str) -> None:
        """Reading members is not audited (identity.md); the list is the clinic's own staff."""
        owner = self.orgs[org]
        body = self.ok(self.call(owner, owner.staff["admin"], "GET", f"{API}/users"))
        assert sorted(u["id"] for u in body["items"]) == sorted(
            s.member.user_id for s in owner.staff.values()
        )

    @rule(
        ref=patients,
        attempt=st.sampled_from(sorted(FORBIDDEN)),
        from_other_clinic=st.booleans(),
    )
    def forbidden(self, ref: PatientRef, attempt: str, from_other_clinic: bool) -> None:
        """A member without the permission: 403 and one ``access.denied`` row in the member's
        own clinic, before any lookup — the same answer for its own clinic's patient and the
        other's."""
        role, permission, req = FORBIDDEN[attempt]
        member_org = self.other(ref.org) if from_other_clinic else self.orgs[ref.org]
        who = member_org.staff[role]
        url, body = req.fill({"patient": ref.id})
        response = self.call(member_org, who, req.method, url, json_body=body)
        self.refused(response, 403, "permission_denied")
        self.audited(member_org, who, "access.denied", "permission", permission)

    # -- the audit API -------------------------------------------------------------------------

    @rule(org=st.sampled_from(ORGS), ref=patients)
    def read_audit_trail(self, org: str, ref: PatientRef) -> None:
        """An admin lists the trail about one patient: its own patient's rows, exactly those
        the model holds; the other clinic's patient — like an id that exists nowhere — none."""
        reader = self.orgs[org]
        admin = reader.staff["admin"]
        for patient_id in (ref.id, str(uuid.uuid4())):
            url = f"{API}/audit?target_type=patient&target_id={patient_id}&limit=500"
            items = self.ok(self.call(reader, admin, "GET", url))["items"]
            held = sum(
                n for k, n in self.expected.items() if k[0] == reader.id and k[3] == patient_id
            )
            assert len(items) == min(held, 500)
            assert all(i["target_id"] == patient_id for i in items)
            self.audited(reader, admin, "audit.read", "audit_trail", reader.id)

    @rule(org=st.sampled_from(ORGS))
    def verify_audit_trail(self, org: str) -> None:
        owner = self.orgs[org]
        admin = owner.staff["admin"]
        assert self.ok(self.call(owner, admin, "GET", f"{API}/audit/verify"))["ok"] is True
        self.audited(owner, admin, "audit.verify", "audit_trail", owner.id)

    @rule(org=st.sampled_from(ORGS), of=st.sampled_from(ORGS), role=st.sampled_from(STAFF))
    def read_audit_trail_of_member(self, org: str, of: str, role: str) -> None:
        """An admin lists what one member did: its own clinic's member's rows, exactly those the
        model holds (sign-in included); the other clinic's member — like nobody — none."""
        reader = self.orgs[org]
        admin = reader.staff["admin"]
        actor_id = self.orgs[of].staff[role].member.user_id
        url = f"{API}/audit?actor_id={actor_id}&limit=500"
        items = self.ok(self.call(reader, admin, "GET", url))["items"]
        held = sum(n for k, n in self.expected.items() if k[0] == reader.id and k[4] == actor_id)
        assert len(items) == min(held, 500) and all(i["actor_id"] == actor_id for i in items)
        if of != org:
            assert items == []
        self.audited(reader, admin, "audit.read", "audit_trail", reader.id)

    # -- the other organization aims at these ids ----------------------------------------------

    @rule(ref=patients, kind=st.sampled_from(sorted(PATIENT_PROBES)))
    def probe_patient(self, ref: PatientRef, kind: str) -> None:
        self._probe(ref.org, PATIENT_PROBES[kind], {"patient": ref.id})

    @rule(entry=entries, name=st.sampled_from(ENTRY_PROBE_NAMES), in_own_patient=st.booleans())
    def probe_entry(self, entry: EntryRef, name: str, in_own_patient: bool) -> None:
        """``in_own_patient``: the path names the prober's own patient, then the other's entry."""
        req = entry_probes(entry.kind).get(name)
        if req is None:
            return
        own = self.other(entry.org).first_patient()
        patient = own if in_own_patient else entry.patient_id
        self._probe(
            entry.org,
            req,
            {"patient": patient, "own": own, "entry": entry.id},
            keep={"own", "patient"} if in_own_patient else {"own"},
        )

    @rule(note=notes, kind=st.sampled_from(sorted(NOTE_PROBES)))
    def probe_note(self, note: NoteRef, kind: str) -> None:
        self._probe(note.org, NOTE_PROBES[kind], {"patient": note.patient_id, "note": note.id})

    @rule(evaluation=evaluations)
    def probe_evaluation(self, evaluation: Ref) -> None:
        body = {"evaluation_id": "{evaluation}", "reason_code": "patient_tolerating"}
        req = Req("POST", f"{API}/cds/overrides", json=body)
        self._probe(evaluation.org, req, {"evaluation": evaluation.id})

    @rule(override=overrides)
    def probe_override(self, override: Ref) -> None:
        req = Req("POST", API + "/cds/overrides/{override}/cosign", role="pharmacist")
        self._probe(override.org, req, {"override": override.id})

    @rule(consent=consents, by_id=st.booleans())
    def probe_consent(self, consent: Ref, by_id: bool) -> None:
        url = "/fhir/Consent?_id={consent}" if by_id else "/fhir/Consent/{consent}"
        self._probe(consent.org, Req("GET", url), {"consent": consent.id})

    @rule(request=data_requests, kind=st.sampled_from(sorted(DATA_REQUEST_PROBES)))
    def probe_data_request(self, request: Ref, kind: str) -> None:
        self._probe(request.org, DATA_REQUEST_PROBES[kind], {"request": request.id})

    @rule(
        org=st.sampled_from(ORGS),
        role=st.sampled_from(STAFF),
        kind=st.sampled_from(sorted(USER_PROBES)),
    )
    def probe_member(self, org: str, role: str, kind: str) -> None:
        member = self.orgs[org].staff[role].member
        self._probe(org, USER_PROBES[kind], {"user": member.user_id})

    def _probe(
        self, target_org: str, req: Req, ids: dict[str, str], keep: set[str] | None = None
    ) -> None:
        """The other organization's member sends ``req`` naming ``target_org``'s ids, then the
        same request with ids that exist nowhere (but those in ``keep``, the prober's own):
        both answers are the same 404 (or 422 naming the same field, or an empty search
        result), and nothing is written or audited (the audit invariant)."""
        prober = self.other(target_org)
        who = prober.staff[req.role]
        self.stats.probes += 1
        nowhere_ids = {k: v if k in (keep or ()) else str(uuid.uuid4()) for k, v in ids.items()}
        answers = []
        for named in (ids, nowhere_ids):
            url, body = req.fill(named)
            answers.append(
                self.call(prober, who, req.method, url, json_body=body, fhir_body=req.fhir_body)
            )
        aimed, nowhere = answers
        assert aimed.status_code == nowhere.status_code, (aimed.text, nowhere.text)
        assert aimed.headers["content-type"] == nowhere.headers["content-type"]
        if aimed.status_code == 200:  # a search (nothing found) or a batch (each entry refused)
            assert _shape(aimed.json()) == _shape(nowhere.json()), (aimed.text, nowhere.text)
            if aimed.json().get("type") == "searchset":
                assert aimed.json().get("entry", []) == []
        elif aimed.status_code == 422:
            assert _problem(aimed) == _problem(nowhere), (aimed.text, nowhere.text)
        else:
            assert assert_not_found(aimed) == assert_not_found(nowhere), (aimed.text, nowhere.text)

    # -- invariants 2 and 3 ---------------------------------------------------------------------

    @invariant()
    def audit_trail_is_the_model_and_verifies(self) -> None:
        if not self._initial_check:
            self.stats.steps += 1
        self._initial_check = False
        self.check()

    def check(self) -> None:
        """Invariants 2 and 3 (invariant 1 is checked on every answer, in ``call``)."""
        actual = self.world.run(self._audit_rows())
        if actual != self.expected:
            names = {org.id: org.key for org in self.orgs.values()}

            def show(rows: Counter[tuple[str | None, ...]]) -> list[tuple[Any, ...]]:
                return [(names.get(k[0] or ""), *k[1:4]) for k in rows.elements()]

            raise AssertionError(
                "audit rows differ from the policy's: "
                f"missing {show(self.expected - actual)}, unexpected {show(actual - self.expected)}"
            )
        broken = self.world.run(self._broken_chains())
        assert not broken, f"audit chain broken: {broken}"


_PER_REQUEST = frozenset({"id", "request_id", "instance", "link", "meta", "timestamp"})


def _shape(body: Any) -> Any:
    """A JSON answer without what legitimately differs between two requests (ids, links,
    times), to compare what each says."""
    if isinstance(body, dict):
        return {k: _shape(v) for k, v in body.items() if k not in _PER_REQUEST}
    if isinstance(body, list):
        return [_shape(v) for v in body]
    return body


def _problem(response: Response) -> Any:
    """What a 422 says (problem+json or OperationOutcome), minus what differs per request."""
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":
        return body["issue"]
    return {k: v for k, v in body.items() if k not in ("request_id", "instance")}


def _json_patient(model: PatientModel) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mrn": model.mrn,
        "given_name": model.given,
        "family_name": model.family,
        "sex": model.sex,
        "birth_date": model.birth_date,
        "national_id": model.national_id,
        "phone": model.phone,
        "email": model.email,
        "preferred_language": "es",
    }
    if model.address_line:
        body["address"] = {"lines": [model.address_line], "city": "El Alto", "country": "BO"}
    return body


def _fhir_patient(model: PatientModel) -> dict[str, Any]:
    identifiers = [{"system": MRN_SYSTEM, "value": model.mrn}]
    if model.national_id:
        identifiers.append({"system": NATIONAL_ID_SYSTEM, "value": model.national_id})
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": identifiers,
        "name": [{"use": "official", "family": model.family, "given": model.given.split(" ")}],
        "gender": model.sex,
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}}],
    }
    if model.birth_date:
        resource["birthDate"] = model.birth_date
    telecom = [
        {"system": system, "value": value}
        for system, value in (("phone", model.phone), ("email", model.email))
        if value
    ]
    if telecom:
        resource["telecom"] = telecom
    if model.address_line:
        resource["address"] = [{"line": [model.address_line], "city": "El Alto", "country": "BO"}]
    return resource


# -- the test -----------------------------------------------------------------------------------


@pytest.mark.timeout(0 if LONG_RUN else 120)
def test_two_tenants_never_see_each_other_and_every_access_is_audited_once(
    settings: Settings, engine_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = RunStats()
    world = World(settings)
    try:

        class OnThisWorld(TwoTenants):
            def __init__(self) -> None:
                super().__init__(world, stats)

        run_state_machine_as_test(
            OnThisWorld,
            settings=hypothesis_settings(
                max_examples=MAX_EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        world.close()
        if LONG_RUN:
            with capsys.disabled():
                print("\n" + stats.report(engine_name))


# -- sequences the machine found, replayed as plain tests ------------------------------------

READY: tuple[str, Demographics, tuple[int, int]] = (
    "json",
    ("Ana María", "Quispe", "female", date(1962, 4, 25), True),
    (0, 0),
)


def replay(settings: Settings, steps: Callable[[TwoTenants, PatientRef, PatientRef], None]) -> None:
    """Run ``steps`` on a fresh machine (two organizations, one patient each), checking the
    invariants after each step as the machine does; ``steps`` calls ``machine.check()``."""
    world = World(settings)
    try:
        machine = TwoTenants(world, RunStats())
        a, b = machine.two_organizations(first=READY, second=READY).values
        machine.check()
        steps(machine, a, b)
        machine.teardown()
    finally:
        world.close()


@pytest.mark.parametrize("flaw", ["email_malformed", "phone_malformed"])
def test_fhir_registration_refuses_the_email_and_phone_the_json_api_refuses(
    settings: Settings, flaw: str
) -> None:
    """Found by the machine: ``POST /fhir/Patient`` stored ``x@@y`` as an email and ``tel x``
    as a phone, which ``POST /api/v1/patients`` refuses — one record, two sets of rules. Now a
    422 naming ``Patient.telecom[i].value`` (never the value), nothing stored or audited."""

    def steps(machine: TwoTenants, a: PatientRef, b: PatientRef) -> None:
        machine.register_invalid(org="A", flaw=flaw, via="fhir")
        machine.check()
        machine.list_patients(org="A", role="clinician")  # still only the first patient
        machine.check()

    replay(settings, steps)


@pytest.mark.parametrize("name", ["phone", "email"])
def test_correction_request_refuses_the_phone_and_email_the_json_api_refuses(
    settings: Settings, name: str
) -> None:
    """Found by the machine: a data-subject correction of ``phone`` took ``llamar a x`` (and of
    ``email`` an address like ``x@@y``) — accepted, it would have written through
    ``update_patient`` a value the JSON API refuses. Now a 422 naming the field when the
    request is taken; a well-formed correction still applies."""

    def steps(machine: TwoTenants, a: PatientRef, b: PatientRef) -> None:
        machine.correction_request(ref=a, name=name, well_formed=False)
        machine.check()
        machine.correction_request(ref=a, name=name, well_formed=True)
        machine.check()
        machine.read_patient(ref=a, via="json", role="clinician")
        machine.check()

    replay(settings, steps)
