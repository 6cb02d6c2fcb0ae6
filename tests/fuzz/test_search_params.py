"""Fuzzing search parameters (issue 9 point 3.4): arbitrary query strings — known and unknown
names, modifiers (``:exact``, ``:missing``), chains (``subject.name``), repeated parameters,
prefixes (``ge``, ``lt``, ``sa``), tokens, references, ``_count``, ``_sort``, ``_cursor``,
unicode, invalid percent-encoding — on ``GET /fhir/<Type>`` and ``POST /fhir/<Type>/_search``
(a form body), and on the JSON API's list and search routes: patients (list and
``POST /search``), a patient's observations, the audit trail and the KPIs (JSON and CSV).

For every case: the answer arrives within seconds, is a 2xx or a 4xx (never a 5xx), and every
4xx is an error document in the route's format that says what is wrong; a search writes nothing
but its audit rows, so a refused one writes nothing at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from clinicos.interop.fhir.registry import RESOURCE_TYPES
from tests.fuzz.parser_world import (
    ENGINE,
    TALLY,
    TIMEOUT,
    World,
    assert_answered,
    encode,
    fuzz_settings,
    print_tally,
    world_on,
)
from tests.fuzz.strategies import VALID, json_values, texts, weird_dates

pytestmark = [ENGINE, TIMEOUT]

FHIR_SEARCH = "fhir-search"
API_SEARCH = "api-search"
COMMON = ("_id", "_count", "_sort", "_cursor", "_format")
MODIFIERS = ("", "", "", ":exact", ":missing", ":not", ":text", ":contains", ":above", ":of-type")
PREFIXES = ("", "", "ge", "le", "gt", "lt", "eq", "ne", "sa", "eb", "ap")
# Written into generated values, replaced by the stored objects' ids when the case runs (the
# strategies are built before the app exists).
PATIENT, OBSERVATION = "{patient}", "{observation}"

# base64 of "0001-01-01T00:00:00+14:00|x": shaped like the cursors the API issues.
YEAR_ONE_CURSOR = "MDAwMS0wMS0wMVQwMDowMDowMCsxNDowMHx4"

Search = tuple[str, str, list[tuple[str, str]], list[str]]  # (path, method, pairs, raw parts)


@pytest.fixture(scope="module")
def world(migrated_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The app with a patient holding one entry of each kind, so searches find something."""
    with world_on(migrated_db_url, tmp_path_factory.mktemp("fuzz-search")) as world:
        headers = {**world.seeded.staff.headers, "Content-Type": "application/fhir+json"}
        ids = world.seeded.ids
        for name, make in VALID.items():
            body = make(ids.get("Patient", ""))
            if name == "Patient":
                body["identifier"][0]["value"] = "FUZZ-SEARCH"
            created = world.request("POST", f"/fhir/{name}", content=encode(body), headers=headers)
            assert created.status_code == 201, created.text
            ids[name] = created.json()["id"]
        yield world


def _placed(world: World, text: str) -> str:
    ids = world.seeded.ids
    return text.replace(PATIENT, ids["Patient"]).replace(OBSERVATION, ids["Observation"])


values = st.one_of(
    st.sampled_from(
        [
            PATIENT,
            f"Patient/{PATIENT}",
            f"Observation/{OBSERVATION}",
            f"{PATIENT},{PATIENT}",
            "http://loinc.org|2160-0",
            "http://loinc.org|",
            "|2160-0",
            "|",
            "2160-0,29463-7",
            ",,,",
            "active",
            "final",
            "true",
            "FUZZ-SEARCH",
            "https://clinicos.dev/fhir/sid/mrn|FUZZ-SEARCH",
            "date",
            "-date",
            "_lastUpdated",
            "0",
            "-1",
            "101",
            "1e2",
            "\uff11\uff10",  # fullwidth 10
            "9" * 300,
            "x" * 257,
            "",
            "null",
            "eyJ4Ijp0cnVlfQ",  # a base64 JSON object: cursor-shaped
            YEAR_ONE_CURSOR,
        ]
    ),
    st.builds(lambda p, d: p + d, st.sampled_from(PREFIXES), weird_dates),
    texts,
)


good_dates = st.sampled_from(
    ["2026-02-15", "2026", "2026-02", "2026-02-15T08:30:00Z", "2026-02-15T08:30:00-04:00"]
)
dates = st.one_of(good_dates, weird_dates)
numbers = st.one_of(
    st.integers(min_value=-5, max_value=600).map(str),
    st.sampled_from(
        ["", "0", "1", "100", "101", "500", "501", "1.5", "1e2", "\uff11\uff10", "9" * 50]
    ),
)
# What each parameter usually carries, so that most cases get past the name check to the
# value's parser; the general ``values`` strategy still comes a third of the time.
BY_NAME: dict[str, st.SearchStrategy[str]] = {
    "date": st.builds(lambda p, d: p + d, st.sampled_from(PREFIXES), dates),
    "from": dates,
    "to": dates,
    "effective_from": dates,
    "effective_to": dates,
    "_count": numbers,
    "limit": numbers,
    "before_seq": numbers,
    "_sort": st.sampled_from(["date", "-date", "_lastUpdated", "-_lastUpdated", "x", "date,-date"]),
    "granularity": st.sampled_from(["day", "week", "month", "year", "DAY", ""]),
    "active": st.sampled_from(["true", "false", "1", "yes", ""]),
    "patient": st.sampled_from([PATIENT, f"Patient/{PATIENT}", f"Observation/{OBSERVATION}"]),
    "subject": st.sampled_from([PATIENT, f"Patient/{PATIENT}", "Patient/"]),
    "_id": st.sampled_from([OBSERVATION, PATIENT, f"{OBSERVATION},{PATIENT}", "a b", ""]),
}


def names(parameters: tuple[str, ...]) -> st.SearchStrategy[str]:
    known = st.sampled_from(sorted({*COMMON, *parameters}))
    return st.one_of(
        known,
        known,
        known,
        st.builds(lambda n, m: n + m, known, st.sampled_from(MODIFIERS)),
        st.builds(lambda n, c: f"{n}.{c}", known, st.sampled_from(["name", "identifier", "x"])),
        st.sampled_from(["_has:Observation:subject:code", "_include", "_revinclude", "_summary"]),
        texts,
    )


raw_fragments = st.lists(
    st.sampled_from(
        ["%", "%zz", "%ff%fe", "%00", "=", "&", "==", "a=b=c", "_count", "_count=", "+", "%2B", ";"]
    ),
    max_size=1,
)


@st.composite
def searches(draw: st.DrawFn, routes: dict[str, tuple[str, ...]], methods: list[str]) -> Search:
    """A route, a method, up to six parameters (sometimes one repeated) and raw fragments."""
    path = draw(st.sampled_from(sorted(routes)))
    pairs: list[tuple[str, str]] = []
    if "patient" in routes[path] and draw(st.integers(0, 3)):
        pairs.append(("patient", PATIENT))  # the FHIR entry searches need a patient
    # Half the cases name only parameters the route knows, so they reach the values' parsers.
    if draw(st.booleans()):
        name_strategy = st.sampled_from(sorted({*COMMON, *routes[path]}))
    else:
        name_strategy = names(routes[path])
    for name in draw(st.lists(name_strategy, max_size=4)):
        typical = BY_NAME.get(name.split(":")[0])
        pairs.append(
            (name, draw(values if typical is None else st.one_of(typical, typical, values)))
        )
    if pairs and not draw(st.integers(0, 3)):
        pairs.append(draw(st.sampled_from(pairs)))
    return path, draw(st.sampled_from(methods)), pairs, draw(raw_fragments)


def query_of(world: World, pairs: list[tuple[str, str]], raw: list[str]) -> str:
    """Pairs percent-encoded as a client would (UTF-8; a lone surrogate as its escape bytes),
    then raw fragments as a careless one would."""

    def enc(text: str) -> str:
        return quote(_placed(world, text).encode("utf-8", "surrogatepass"), safe="")

    return "&".join([f"{enc(k)}={enc(v)}" for k, v in pairs] + raw)


def send(world: World, target: str, method: str, path: str, *, fhir: bool, **kwargs: Any) -> Any:
    headers = {**world.seeded.staff.headers, **kwargs.pop("headers", {})}
    with world.unchanged_unless_accepted() as responses:
        response = world.request(method, path, headers=headers, **kwargs)
        responses.append(response)
    TALLY.count(target, response.status_code)
    assert_answered(response, fhir=fhir)
    return response


# -- the FHIR facade --------------------------------------------------------------------------

FHIR_ROUTES = {
    f"/fhir/{name}": handler.search_parameters for name, handler in RESOURCE_TYPES.items()
}


def run_fhir_search(world: World, search: Search) -> None:
    path, method, pairs, raw = search
    query = query_of(world, pairs, raw)
    if method == "GET":
        response = send(world, FHIR_SEARCH, "GET", f"{path}?{query}", fhir=True)
    else:
        response = send(
            world,
            FHIR_SEARCH,
            "POST",
            f"{path}/_search",
            fhir=True,
            content=query.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    if response.status_code == 200:
        bundle = response.json()
        assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset"), bundle


@fuzz_settings(100)
# Regressions (each was a 500): dates whose range runs past 9999-12-31 or has no UTC instant
# (interop/fhir/search.py _date_range overflowed).
@example(search=("/fhir/Observation", "GET", [("patient", PATIENT), ("date", "9999-12-31")], []))
@example(
    search=(
        "/fhir/Observation",
        "GET",
        [("patient", PATIENT), ("date", "le9999-12-31T23:59:59Z")],
        [],
    )
)
@example(
    search=(
        "/fhir/Condition",
        "POST",
        [("patient", PATIENT), ("date", "ge0001-01-01T00:00:00+14:00")],
        [],
    )
)
# A cursor naming 0001-01-01T00:00:00+14:00|x: it decoded, then the database driver could not
# convert it to UTC (records/services/patients.py decode_cursor).
@example(
    search=(
        "/fhir/AllergyIntolerance",
        "GET",
        [("patient", PATIENT), ("_cursor", YEAR_ONE_CURSOR)],
        [],
    )
)
@given(search=searches(FHIR_ROUTES, ["GET", "GET", "POST"]))
def fuzz_fhir_search(world: World, search: Search) -> None:
    run_fhir_search(world, search)


def test_fhir_search_answers_every_query_with_a_bundle_or_an_outcome(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz_fhir_search(world)
    print_tally(capsys, FHIR_SEARCH)


# -- the JSON API -----------------------------------------------------------------------------

API_ROUTES = {
    "/api/v1/patients": ("active", "limit", "cursor"),
    f"/api/v1/patients/{PATIENT}/observations": (
        "code",
        "category",
        "effective_from",
        "effective_to",
        "limit",
        "cursor",
    ),
    "/api/v1/audit": (
        "actor_id",
        "action",
        "target_type",
        "target_id",
        "from",
        "to",
        "limit",
        "before_seq",
    ),
    "/api/v1/data-requests": ("status", "kind", "overdue", "patient_id", "limit", "cursor"),
    "/api/v1/kpi": ("from", "to", "granularity"),
    "/api/v1/kpi.csv": ("from", "to", "granularity"),
    "/api/v1/patients/search": (
        "mrn",
        "name",
        "family_name",
        "national_id",
        "phone",
        "email",
        "active",
        "limit",
        "cursor",
    ),
}


def run_api_search(world: World, search: Search, body_values: list[Any] | None = None) -> None:
    path, _method, pairs, raw = search
    path = _placed(world, path)
    if path.endswith("/search"):
        # Criteria travel in a JSON body here (PHI stays out of URLs): the pairs as members,
        # with arbitrary JSON for some of them.
        body: dict[str, Any] = {_placed(world, k): _placed(world, v) for k, v in pairs}
        for (key, _), value in zip(pairs, body_values or [], strict=False):
            body[_placed(world, key)] = value
        send(
            world,
            API_SEARCH,
            "POST",
            path,
            fhir=False,
            content=encode(body),
            headers={"Content-Type": "application/json"},
        )
        return
    query = query_of(world, pairs, raw)
    accept = {"Accept": "text/csv"} if "granularity" in query else {}
    response = send(world, API_SEARCH, "GET", f"{path}?{query}", fhir=False, headers=accept)
    if response.status_code == 200 and "json" in response.headers["content-type"]:
        json.loads(response.text)


@fuzz_settings(100)
# Regressions: KPI ranges at the ends of the calendar (governance/kpi.py; the day before
# 0001-01-01 and a +14:00 instant in year 1 were 500s, their 9999 twin is kept alongside) ...
@example(
    search=("/api/v1/kpi", "GET", [("from", "0001-01-01"), ("to", "0001-01-02")], []),
    body_values=[],
)
@example(
    search=("/api/v1/kpi", "GET", [("from", "9999-12-30"), ("to", "9999-12-31")], []),
    body_values=[],
)
@example(
    search=(
        "/api/v1/kpi.csv",
        "GET",
        [("from", "0001-01-01T00:00:00+14:00"), ("to", "2026-01-01")],
        [],
    ),
    body_values=[],
)
# ... and instants with no UTC instant that reached the database driver (governance/routes.py
# list_events, records/clinical_routes.py list_observations), as did such cursors
# (records/services/patients.py decode_cursor, governance/dsr/requests.py _decode).
@example(
    search=("/api/v1/audit", "GET", [("from", "0001-01-01T00:00:00+14:00")], []), body_values=[]
)
@example(
    search=(
        f"/api/v1/patients/{PATIENT}/observations",
        "GET",
        [("effective_to", "0001-01-01T00:00:00+14:00")],
        [],
    ),
    body_values=[],
)
@example(search=("/api/v1/patients", "GET", [("cursor", YEAR_ONE_CURSOR)], []), body_values=[])
@example(search=("/api/v1/data-requests", "GET", [("cursor", YEAR_ONE_CURSOR)], []), body_values=[])
# An audit page before a sequence number past SQLite's 64-bit INTEGER overflowed the driver.
@example(search=("/api/v1/audit", "GET", [("before_seq", "9" * 300)], []), body_values=[])
@example(search=("/api/v1/audit", "GET", [("before_seq", str(2**63))], []), body_values=[])
@given(
    search=searches(API_ROUTES, ["GET"]),
    body_values=st.lists(json_values, max_size=3),
)
def fuzz_api_search(world: World, search: Search, body_values: list[Any]) -> None:
    run_api_search(world, search, body_values)


def test_api_list_and_search_routes_answer_every_query_with_a_page_or_a_problem(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz_api_search(world)
    print_tally(capsys, API_SEARCH)
