"""Search parameters: parse and validate the common ones, keep each type's own, refuse
what a type does not understand (FHIR's ``handling=strict``) and PHI criteria in URLs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from clinicos.interop.fhir.base import (
    COMMON_PARAMETERS,
    DEFAULT_COUNT,
    ID_PATTERN,
    MAX_COUNT,
    DateBound,
    ResourceType,
    SearchRequest,
    Token,
)
from clinicos.interop.fhir.outcome import FhirBadRequest

MAX_VALUE_LENGTH = 256
_DATE_PREFIXES = ("ge", "le", "gt", "lt", "eq")
# Parameters for the patient a resource belongs to.
_PATIENT_PARAMETERS = ("patient", "subject")


def parse_search(
    handler: ResourceType, pairs: Sequence[tuple[str, str]], *, in_url: bool
) -> SearchRequest:
    """A validated search. ``in_url``: the parameters came in the query string, where
    identifying criteria (``handler.phi_parameters``) are refused with a pointer to
    ``POST <type>/_search``."""
    known = set(COMMON_PARAMETERS) | set(handler.search_parameters)
    search = SearchRequest()
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        if len(value) > MAX_VALUE_LENGTH:
            raise FhirBadRequest(f"search parameter '{name}' is longer than {MAX_VALUE_LENGTH}")
        if name not in known:
            raise FhirBadRequest(
                f"search parameter '{name}' is not supported for {handler.name}; "
                f"supported: {', '.join(sorted(known - {'_format'}))}"
            )
        if in_url and name in handler.phi_parameters:
            raise FhirBadRequest(
                f"search parameter '{name}' identifies people and is not accepted in a URL; "
                f"send it in the form body of POST /fhir/{handler.name}/_search"
            )
        grouped.setdefault(name, []).append(value)

    for value in _values(grouped, "_id"):
        if not ID_PATTERN.match(value):
            raise FhirBadRequest("search parameter '_id' is not a valid id")
        search.ids += (value,)
    if search.ids and len(grouped.get("_id", [])) > 1:
        raise FhirBadRequest("give several ids as one comma-separated '_id'")
    patients = [v for name in _PATIENT_PARAMETERS for v in _values(grouped, name)]
    if len(patients) > 1:
        raise FhirBadRequest("search by one patient at a time ('patient' or 'subject')")
    if patients:
        ref = patients[0].rpartition("/")[2] if "/" in patients[0] else patients[0]
        if patients[0].count("/") > 0 and not patients[0].startswith("Patient/"):
            raise FhirBadRequest("'patient'/'subject' must reference a Patient")
        if not ID_PATTERN.match(ref):
            raise FhirBadRequest("'patient'/'subject' is not a valid Patient reference")
        search.patient_id = ref
    search.codes = tuple(_token(v) for v in _values(grouped, "code"))
    search.statuses = tuple(_values(grouped, "status"))
    search.clinical_statuses = tuple(_values(grouped, "clinical-status"))
    search.dates = tuple(b for raw in grouped.get("date", []) for b in _date_bounds(raw))
    sort = grouped.get("_sort", [])
    if sort:
        if len(sort) > 1 or sort[0] not in ("date", "-date", "_lastUpdated", "-_lastUpdated"):
            raise FhirBadRequest("'_sort' supports date, -date, _lastUpdated, -_lastUpdated")
        search.newest_first = sort[0].startswith("-")
    count = grouped.get("_count", [])
    if count:
        try:
            search.count = int(count[-1])
        except ValueError:
            raise FhirBadRequest("'_count' must be a whole number") from None
        if not 1 <= search.count <= MAX_COUNT:
            raise FhirBadRequest(f"'_count' must be between 1 and {MAX_COUNT}")
    else:
        search.count = DEFAULT_COUNT
    cursors = grouped.get("_cursor", [])
    search.cursor = cursors[-1] if cursors else None
    handled = {
        "_id",
        "code",
        "status",
        "clinical-status",
        "date",
        "_sort",
        "_count",
        "_cursor",
        "_format",
        *_PATIENT_PARAMETERS,
    }
    search.extra = {k: tuple(v) for k, v in grouped.items() if k not in handled}
    return search


def _values(grouped: dict[str, list[str]], name: str) -> list[str]:
    """Every comma-separated value of a parameter (FHIR OR semantics)."""
    return [part for raw in grouped.get(name, []) for part in raw.split(",") if part]


def _token(raw: str) -> Token:
    if "|" in raw:
        system, _, code = raw.partition("|")
        return Token(system=system or None, code=code or None)
    return Token(system=None, code=raw)


def _date_bounds(raw: str) -> list[DateBound]:
    prefix = raw[:2] if raw[:2] in _DATE_PREFIXES else "eq"
    text = raw[2:] if raw[:2] in _DATE_PREFIXES else raw
    start, end = _date_range(text)
    if prefix == "ge":
        return [DateBound("ge", start)]
    if prefix == "gt":
        return [DateBound("ge", end)]
    if prefix == "le":
        return [DateBound("lt", end)]
    if prefix == "lt":
        return [DateBound("lt", start)]
    return [DateBound("ge", start), DateBound("lt", end)]


def _date_range(text: str) -> tuple[datetime, datetime]:
    """The instant range a FHIR date value covers: a day, a month, a year, or an instant."""
    try:
        return _covered(text)
    except OverflowError:  # 9999-12-31 has no next day; 0001-01-01T00:00+14:00 no UTC instant
        raise FhirBadRequest("search parameter 'date' is outside the range of dates") from None


def _covered(text: str) -> tuple[datetime, datetime]:
    try:
        if len(text) == 4:
            year = int(text)
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        if len(text) == 7:
            year, month = int(text[:4]), int(text[5:7])
            start = datetime(year, month, 1, tzinfo=UTC)
            nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return start, nxt
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FhirBadRequest("search parameter 'date' is not a FHIR date") from None
    if moment.tzinfo is None:
        raise FhirBadRequest("a 'date' with a time needs a time zone")
    moment = moment.astimezone(UTC)
    return moment, moment + timedelta(seconds=1)
