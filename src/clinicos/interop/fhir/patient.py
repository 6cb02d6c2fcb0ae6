"""FHIR ``Patient`` ↔ the record's patient.

Identifiers: the MRN is the identifier typed ``MR`` (HL7 v2-0203) or in our MRN system; a
national id is typed ``NI``/``SS``/``SB`` or in our national-id system. Names: the first
``official`` (else ``usual``, else first) name; given names joined by a space. Telecom: the
first phone and the first email. Address: the first one. Language: the first
``communication.language`` code. Anything else in an incoming Patient is not stored — the
mapping table in docs/contexts/interop.md lists what round-trips."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from fhir.resources.R4B.patient import Patient as FhirPatient

from clinicos.identity import Permission
from clinicos.interop.fhir.base import (
    READ_WRITE,
    FhirContext,
    Resolver,
    SearchPage,
    SearchRequest,
    day_of,
    meta,
    validate_model,
)
from clinicos.interop.fhir.outcome import FhirBadRequest, invalid
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.records import (
    Address,
    PatientFields,
    PatientSearch,
    PatientView,
    add_patient,
    get_patient,
    is_email,
    is_phone,
    register_patient,
    search_patients,
    update_patient,
)

MRN_SYSTEM = "https://clinicos.dev/fhir/sid/mrn"
NATIONAL_ID_SYSTEM = "https://clinicos.dev/fhir/sid/national-id"
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
NATIONAL_ID_TYPES = frozenset({"NI", "SS", "SB", "NNBOL", "NNBRA"})
GENDERS = frozenset({"male", "female", "other", "unknown"})


def to_fhir(view: PatientView) -> dict[str, Any]:
    """The patient as a FHIR R4 Patient resource (JSON)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": view.id,
        "meta": meta(view.version, view.updated_at),
        "active": view.active,
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": "MR"}]},
                "system": MRN_SYSTEM,
                "value": view.mrn,
            }
        ],
        "name": [
            {
                "use": "official",
                "family": view.family_name,
                **({"given": view.given_name.split(" ")} if view.given_name else {}),
            }
        ],
        "gender": view.sex,
    }
    if view.national_id:
        resource["identifier"].append(
            {
                "use": "official",
                "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": "NI"}]},
                "system": NATIONAL_ID_SYSTEM,
                "value": view.national_id,
            }
        )
    if view.birth_date:
        resource["birthDate"] = view.birth_date.isoformat()
    telecom = []
    if view.phone:
        telecom.append({"system": "phone", "value": view.phone})
    if view.email:
        telecom.append({"system": "email", "value": view.email})
    if telecom:
        resource["telecom"] = telecom
    if view.address:
        address: dict[str, Any] = {}
        if view.address.lines:
            address["line"] = list(view.address.lines)
        for ours, theirs in (
            ("city", "city"),
            ("district", "district"),
            ("state", "state"),
            ("postal_code", "postalCode"),
            ("country", "country"),
        ):
            value = getattr(view.address, ours)
            if value:
                address[theirs] = value
        resource["address"] = [address]
    if view.preferred_language:
        resource["communication"] = [
            {
                "language": {
                    "coding": [{"system": "urn:ietf:bcp:47", "code": view.preferred_language}]
                },
                "preferred": True,
            }
        ]
    return resource


def _identifier_kind(identifier: Any) -> str | None:
    if identifier.system == MRN_SYSTEM:
        return "mrn"
    if identifier.system == NATIONAL_ID_SYSTEM:
        return "national_id"
    codes = {c.code for c in ((identifier.type.coding or []) if identifier.type else []) if c.code}
    if "MR" in codes:
        return "mrn"
    if codes & NATIONAL_ID_TYPES:
        return "national_id"
    return None


def _bounded(value: str | None, path: str, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise invalid(path, f"at most {limit} characters")
    return value


def from_fhir(data: Any) -> PatientFields:
    """The demographics a FHIR Patient carries; 422 naming the element when one is missing
    or out of bounds."""
    patient = validate_model(FhirPatient, "Patient", data)
    mrn = national_id = None
    for index, identifier in enumerate(patient.identifier or []):
        kind = _identifier_kind(identifier)
        path = f"Patient.identifier[{index}].value"
        if kind == "mrn" and mrn is None:
            mrn = _bounded(identifier.value, path, 64)
        elif kind == "national_id" and national_id is None:
            national_id = _bounded(identifier.value, path, 32)
    if not mrn:
        raise invalid("Patient.identifier", "an MRN identifier (type MR) is required")
    if any(ch.isspace() for ch in mrn):
        raise invalid("Patient.identifier", "the MRN may not contain spaces")
    names = patient.name or []
    name = next((n for n in names if n.use == "official"), None)
    name = (
        name or next((n for n in names if n.use == "usual"), None) or (names[0] if names else None)
    )
    family = _bounded(name.family if name else None, "Patient.name[0].family", 100)
    if not family:
        raise invalid("Patient.name", "a family name is required")
    given = _bounded(
        " ".join(g for g in (name.given or []) if g) if name and name.given else None,
        "Patient.name[0].given",
        100,
    )
    gender = patient.gender or "unknown"
    if gender not in GENDERS:
        raise invalid("Patient.gender", "must be male, female, other or unknown")
    phone = email = None
    for index, contact in enumerate(patient.telecom or []):
        path = f"Patient.telecom[{index}].value"
        if contact.system == "phone" and phone is None:
            phone = _bounded(contact.value, path, 32)
            if phone is not None and not is_phone(phone):
                raise invalid(path, "a phone number: 4-32 digits, spaces and + ( ) . / -")
        elif contact.system == "email" and email is None:
            email = _bounded(contact.value, path, 254)
            if email is not None and not is_email(email):
                raise invalid(path, "an email address")
    address = None
    if patient.address:
        first = patient.address[0]
        lines = tuple(
            bounded
            for i, line in enumerate(first.line or [])
            if (bounded := _bounded(line, f"Patient.address[0].line[{i}]", 200))
        )
        if len(lines) > 4:
            raise invalid("Patient.address[0].line", "at most 4 lines")
        address = Address(
            lines=lines,
            city=_bounded(first.city, "Patient.address[0].city", 100),
            district=_bounded(first.district, "Patient.address[0].district", 100),
            state=_bounded(first.state, "Patient.address[0].state", 100),
            postal_code=_bounded(first.postalCode, "Patient.address[0].postalCode", 16),
            country=_bounded(first.country, "Patient.address[0].country", 100),
        )
    language = None
    for communication in patient.communication or []:
        concept = communication.language  # required, but an explicit null gets through
        for coding in (concept.coding if concept else None) or []:
            if coding.code:
                language = _bounded(coding.code, "Patient.communication[0].language", 16)
                break
        if language:
            break
    return PatientFields(
        mrn=mrn,
        family_name=family,
        given_name=given,
        # FHIR allows "1948" or "1948-05"; the record keeps a day (day_of refuses the rest).
        birth_date=day_of(patient.birthDate, "Patient.birthDate"),
        sex=gender,
        national_id=national_id,
        phone=phone,
        email=email,
        address=address,
        preferred_language=language,
        active=True if patient.active is None else bool(patient.active),
    )


class PatientResource:
    name = "Patient"
    read_permission = Permission.patient_read
    write_permission = Permission.patient_write
    search_parameters: tuple[str, ...] = (
        "identifier",
        "name",
        "family",
        "phone",
        "email",
        "telecom",
        "active",
    )
    phi_parameters: tuple[str, ...] = ("identifier", "name", "family", "phone", "email", "telecom")
    interactions: tuple[str, ...] = READ_WRITE

    async def read(self, ctx: FhirContext, resource_id: str) -> dict[str, Any]:
        view = await get_patient(
            uows=ctx.uows, phi=ctx.phi, actor=ctx.actor, patient_id=resource_id
        )
        return to_fhir(view)

    async def search(self, ctx: FhirContext, search: SearchRequest) -> SearchPage:
        criteria = _criteria(search)
        page = await search_patients(
            uows=ctx.uows,
            phi=ctx.phi,
            actor=ctx.actor,
            criteria=criteria,
            limit=search.count,
            cursor=search.cursor,
        )
        return SearchPage(resources=[to_fhir(v) for v in page.items], next_cursor=page.next_cursor)

    async def create(self, ctx: FhirContext, resource: dict[str, Any]) -> dict[str, Any]:
        view = await register_patient(
            uows=ctx.uows, phi=ctx.phi, actor=ctx.actor, values=from_fhir(resource)
        )
        return to_fhir(view)

    async def update(
        self, ctx: FhirContext, resource_id: str, resource: dict[str, Any], version: int | None
    ) -> dict[str, Any]:
        values = from_fhir(resource)
        # FHIR update replaces the resource: what the body leaves out is cleared.
        changes = {f.name: getattr(values, f.name) for f in fields(PatientFields)}
        view = await update_patient(
            uows=ctx.uows,
            phi=ctx.phi,
            actor=ctx.actor,
            patient_id=resource_id,
            changes=changes,
            expected_version=version,
        )
        return to_fhir(view)

    async def add(
        self, uow: SqlUnitOfWork, ctx: FhirContext, resource: dict[str, Any], resolver: Resolver
    ) -> tuple[str, int]:
        row = await add_patient(uow, ctx.phi, ctx.actor, from_fhir(resource))
        return row.id, row.version


def _criteria(search: SearchRequest) -> PatientSearch:
    def one(name: str) -> str | None:
        values = search.extra.get(name, ())
        if len(values) > 1:
            raise FhirBadRequest(f"search parameter '{name}' may be given once")
        return values[0] if values else None

    identifier = one("identifier")
    mrn = national_id = None
    if identifier is not None:
        system, sep, value = (
            identifier.rpartition("|") if "|" in identifier else ("", "", identifier)
        )
        if system in ("", MRN_SYSTEM):
            mrn = value
        elif system == NATIONAL_ID_SYSTEM:
            national_id = value
        else:
            raise FhirBadRequest(f"identifier system must be {MRN_SYSTEM} or {NATIONAL_ID_SYSTEM}")
        _ = sep
    telecom = one("telecom")
    phone, email = one("phone"), one("email")
    if telecom is not None:
        if "@" in telecom:
            email = email or telecom
        else:
            phone = phone or telecom
    active_value = one("active")
    if active_value not in (None, "true", "false"):
        raise FhirBadRequest("search parameter 'active' must be true or false")
    return PatientSearch(
        mrn=mrn,
        national_id=national_id,
        name=one("name"),
        family_name=one("family"),
        phone=phone,
        email=email,
        ids=search.ids,
        active=None if active_value is None else active_value == "true",
    )
