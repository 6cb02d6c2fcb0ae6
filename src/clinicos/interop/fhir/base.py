"""What every FHIR resource type the facade serves provides, and the search parameters they
share. Each resource module (patient.py, observation.py …) defines one ``ResourceType``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from clinicos.identity import Permission
from clinicos.interop.fhir.outcome import FhirBadRequest, invalid, invalid_from
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import NotFound
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records import EntryCriteria, PrescriptionCheck, allow_every_prescription

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]
M = TypeVar("M", bound=BaseModel)

READ_WRITE = ("read", "search-type", "create", "update")
DEFAULT_COUNT = 20
MAX_COUNT = 100
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Parameters every search understands (besides each type's own).
COMMON_PARAMETERS = ("_id", "_count", "_sort", "_cursor", "_format")


@dataclass(frozen=True)
class FhirContext:
    """Who is asking, through which storage and keys, and the server's base URL."""

    uows: UnitOfWorkFor
    phi: PhiKeyring
    actor: Actor
    base_url: str
    # What issuing a MedicationRequest passes (decision support, from the composition root).
    prescription_check: PrescriptionCheck = allow_every_prescription


@dataclass(frozen=True)
class Token:
    """A ``system|code`` token; either part may be absent (``code`` alone, ``system|``)."""

    system: str | None
    code: str | None


@dataclass(frozen=True)
class DateBound:
    """``ge``/``le`` (and ``gt``/``lt``/``eq``) date prefix as an instant bound."""

    prefix: str
    value: datetime


@dataclass
class SearchRequest:
    """A parsed search: common parameters plus each type's own, already validated."""

    ids: tuple[str, ...] = ()
    patient_id: str | None = None
    codes: tuple[Token, ...] = ()
    dates: tuple[DateBound, ...] = ()
    statuses: tuple[str, ...] = ()
    clinical_statuses: tuple[str, ...] = ()
    newest_first: bool = True
    count: int = DEFAULT_COUNT
    cursor: str | None = None
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchPage:
    resources: list[dict[str, Any]]
    next_cursor: str | None
    truncated: bool = False


class Resolver(Protocol):
    """Maps a reference as written in a bundle (``urn:uuid:…`` or ``Patient/<id>``) to the
    stored id of the resource it names, within one transaction."""

    def resolve(self, reference: str, expected_type: str) -> str: ...


class ResourceType(Protocol):
    name: str
    read_permission: Permission
    write_permission: Permission
    # Search parameters this type understands beyond COMMON_PARAMETERS.
    search_parameters: tuple[str, ...]
    # Parameters that carry PHI and are therefore accepted only in a POST _search body.
    phi_parameters: tuple[str, ...]
    # The CapabilityStatement's interactions for the type.
    interactions: tuple[str, ...]

    async def read(self, ctx: FhirContext, resource_id: str) -> dict[str, Any]: ...

    async def search(self, ctx: FhirContext, search: SearchRequest) -> SearchPage: ...

    async def create(self, ctx: FhirContext, resource: dict[str, Any]) -> dict[str, Any]: ...

    async def update(
        self, ctx: FhirContext, resource_id: str, resource: dict[str, Any], version: int | None
    ) -> dict[str, Any]: ...

    async def add(
        self,
        uow: SqlUnitOfWork,
        ctx: FhirContext,
        resource: dict[str, Any],
        resolver: Resolver,
    ) -> tuple[str, int]:
        """Create inside the caller's transaction (bundles); returns ``(id, version)``."""
        ...


# -- parsing helpers shared by the resource modules ---------------------------------------------


def validate_model(model: type[M], resource_type: str, data: Any) -> M:
    """Validate raw JSON with a fhir.resources model; a failure is a 422 OperationOutcome
    naming each element path."""
    if not isinstance(data, Mapping):
        raise FhirBadRequest(f"the body must be a JSON {resource_type} resource")
    if data.get("resourceType") != resource_type:
        raise invalid(f"{resource_type}.resourceType", f"must be '{resource_type}'")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise invalid_from(resource_type, exc) from None


def reference_id(
    reference: str | None, expected_type: str, path: str, resolver: Resolver | None = None
) -> str:
    """The id in ``<Type>/<id>`` (or, inside a bundle, a ``urn:uuid:`` the resolver knows)."""
    if not reference:
        raise invalid(path, f"a reference to a {expected_type} is required")
    if resolver is not None:
        return resolver.resolve(reference, expected_type)
    kind, _, ref_id = reference.rstrip("/").rpartition("/")
    kind = kind.rpartition("/")[2]
    if kind != expected_type or not ID_PATTERN.match(ref_id):
        raise invalid(path, f"must reference a {expected_type} as '{expected_type}/<id>'")
    return ref_id


def optional_reference(
    reference: Any, expected_type: str, path: str, resolver: Resolver | None = None
) -> str | None:
    """The id of an optional Reference element (model or None); a reference to a resource
    this server does not store (``Practitioner/…`` in a Synthea bundle) is an error only when
    it claims to be ``expected_type``."""
    if reference is None or not reference.reference:
        return None
    return reference_id(reference.reference, expected_type, f"{path}.reference", resolver)


def instant(value: Any, path: str) -> datetime:
    """A FHIR dateTime/instant as an aware UTC datetime. A date alone means its start (UTC);
    a dateTime without a zone is refused (ambiguous across clinics)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise invalid(path, "a time zone is required")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+14:00 is before the first UTC instant
            raise invalid(path, "is outside the range of dates this server stores") from None
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise invalid(path, "not a FHIR dateTime") from None
        return instant(parsed, path)
    raise invalid(path, "a dateTime is required")


def day_of(value: Any, path: str) -> date | None:
    """The day of a FHIR date or dateTime (None stays None). A dateTime's day is taken in
    the zone it was written in: an onset "2026-03-01T23:00-04:00" began on March 1st there."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise invalid(path, "not a FHIR date") from None
    raise invalid(path, "a full date (YYYY-MM-DD) is required; a year or month alone is not stored")


def fhir_instant(value: datetime | None) -> str | None:
    """An aware datetime as a FHIR instant (UTC, ``Z``)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def meta(version: int, updated_at: datetime | None) -> dict[str, Any]:
    data: dict[str, Any] = {"versionId": str(version)}
    if updated_at is not None:
        data["lastUpdated"] = fhir_instant(updated_at)
    return data


def codings(concept: Any) -> list[tuple[str | None, str | None, str | None]]:
    """``(system, code, display)`` of every coding of a CodeableConcept (model or None)."""
    if concept is None:
        return []
    return [(c.system, c.code, c.display) for c in (concept.coding or [])]


def first_code(concept: Any, system: str) -> tuple[str, str | None] | None:
    """The first coding of ``system`` as ``(code, display)``."""
    for coding_system, code, display in codings(concept):
        if coding_system == system and code:
            return code, display
    return None


def concept_code(concept: Any) -> str | None:
    """The code of a simple CodeableConcept (``clinicalStatus`` …): its first coding."""
    for _system, code, _display in codings(concept):
        if code:
            return code
    return None


async def by_ids(handler: ResourceType, ctx: FhirContext, ids: Sequence[str]) -> SearchPage:
    """``_id`` search without a patient: each id read on its own (each read audited); ids
    that do not exist in the organization are simply not matched."""
    found = []
    for resource_id in ids[:MAX_COUNT]:
        try:
            found.append(await handler.read(ctx, resource_id))
        except NotFound:
            continue
    return SearchPage(resources=found, next_cursor=None)


def entry_criteria(search: SearchRequest) -> EntryCriteria:
    """The record's search criteria for a parsed FHIR search (``code``, ``status``,
    ``clinical-status``, ``date`` bounds and ``_sort``)."""
    low = [b.value for b in search.dates if b.prefix == "ge"]
    high = [b.value for b in search.dates if b.prefix == "lt"]
    return EntryCriteria(
        codes=tuple((t.system, t.code) for t in search.codes),
        statuses=search.statuses,
        clinical_statuses=search.clinical_statuses,
        date_from=max(low) if low else None,
        date_before=min(high) if high else None,
        oldest_first=not search.newest_first,
    )


def coding(system: str | None, code: str | None, display: str | None = None) -> dict[str, Any]:
    """A FHIR Coding without empty elements."""
    return {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}


def concept(system: str | None, code: str | None, display: str | None = None) -> dict[str, Any]:
    """A CodeableConcept of one coding."""
    return {"coding": [coding(system, code, display)]}


def fhir_decimal(value: Any) -> int | float:
    """A stored Decimal as a JSON number: an int when whole (``5`` not ``5.0``)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)
