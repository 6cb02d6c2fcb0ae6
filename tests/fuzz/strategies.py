"""Hypothesis strategies for the parser fuzzers: arbitrary JSON, valid FHIR resources and
CDS Hooks requests (the ones the integration suites store successfully), mutations of them, and
malformed bodies."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.parser_world import DuplicateKey, Raw, encode
from tests.integration.interop.test_fhir_clinical import (
    fhir_condition,
    fhir_observation,
    fhir_prescription,
)
from tests.integration.interop.test_fhir_encounter import fhir_encounter
from tests.integration.interop.test_fhir_patient import fhir_patient

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

# -- text and JSON ------------------------------------------------------------------------------

# Every code point, lone surrogates, controls, NUL and unassigned ones included.
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=40)
# Strings a parser meets in the wild: empty, blank, NUL, a lone surrogate, RTL override,
# combining marks, emoji, a BOM, CR/LF, long ones, and lookalikes of the values it expects.
nasty_strings = st.sampled_from(
    [
        "",
        " ",
        "\u0000",
        "a\u0000b",
        "\ud800",
        "\udfff",
        "\u202e",
        "e\u0301\u0301\u0301",
        "\U0001f600",
        "\ufeff",
        "\r\n",
        "null",
        "NaN",
        "-0",
        "1e309",
        "0x1F",
        "Patient/",
        "urn:uuid:",
        "%00",
        "../../etc/passwd",
        "' OR '1'='1",
        "x" * 300,
        "ü" * 70,
        "\uff11\uff12\uff13",  # fullwidth digits
        "٣",
    ]
)
texts = st.one_of(any_text, nasty_strings)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(texts, children, max_size=5),
    ),
    max_leaves=25,
)

# JSON numbers and structures the standard encoder cannot write, placed verbatim.
raw_tokens = st.one_of(
    st.sampled_from(
        [
            Raw("NaN"),
            Raw("Infinity"),
            Raw("-Infinity"),
            Raw("1e999999"),
            Raw("-1e999999"),
            Raw("1E-999999"),
            Raw("-0"),
            Raw("0.0000000000000000000000000000001"),
            Raw("9" * 4301),  # past Python's int-from-text limit
            Raw("1." + "0" * 5000 + "1"),
            Raw('"\\ud800"'),
            Raw('"\\u0000"'),
            Raw('"\\uDFFF\\uD800"'),
        ]
    ),
    st.integers(min_value=2, max_value=200_000).map(lambda d: Raw("[" * d + "1" + "]" * d)),
    st.integers(min_value=2, max_value=200_000).map(lambda d: Raw('{"a":' * d + "1" + "}" * d)),
    st.integers(min_value=1, max_value=1_200_000).map(lambda n: Raw(json.dumps("x" * n))),
)
# Numbers a parser must bound or refuse (valid JSON all of them, the standard encoder writes
# each but the 400-digit one): extreme magnitudes, more decimals than any field keeps, zero and
# negatives where a positive quantity is expected, integers past 32 and 64 bits.
interesting_numbers = st.one_of(
    st.sampled_from(
        [
            0,
            -1,
            -0.0,
            1e-300,
            1e300,
            1.7976931348623157e308,
            5e-324,
            2**31,
            2**63,
            10**20,
            123456789.123456789,
            0.1234567890123456789,
            Raw("1" * 400),
            Raw("0." + "0" * 400 + "1"),
            Raw("1e400"),
        ]
    ),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
wrong_types = st.sampled_from(
    ["", "x", 0, -1, 1.5, True, False, None, [], {}, [None], {"a": 1}, [[[]]], ["x"] * 3]
)

# -- valid examples (taken from the integration suites, where they are stored) ------------------

REFERENCE_KEYS = ("reference",)
DATE_KEYS = (
    "birthDate",
    "effectiveDateTime",
    "effectiveInstant",
    "issued",
    "onsetDateTime",
    "abatementDateTime",
    "authoredOn",
    "start",
    "end",
    "recordedDate",
)


def medication_statement(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "6809"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectivePeriod": {"start": "2021-02-10"},
    }


def allergy(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "category": ["medication"],
        "criticality": "high",
        "code": {"coding": [{"system": RXNORM, "code": "11289", "display": "warfarin"}]},
        "patient": {"reference": f"Patient/{patient_id}"},
        "reaction": [{"manifestation": [{"text": "hematoma"}]}],
    }


# resource type -> a valid resource about the patient with this id. Dates lie before the
# fuzzing app's fixed clock (tests/support/identity_fixtures.START, 2026-03-02): a measurement
# or a visit in the future is refused, which would stop every mutation at that check.
MEASURED = "2026-02-15T08:30:00Z"
VALID: dict[str, Callable[[str], dict[str, Any]]] = {
    "Patient": lambda _patient_id: fhir_patient(mrn="FUZZ-MRN"),
    "Observation": lambda patient_id: fhir_observation(patient_id, when=MEASURED),
    "Condition": fhir_condition,
    "MedicationRequest": fhir_prescription,
    "Encounter": lambda patient_id: fhir_encounter(
        f"Patient/{patient_id}",
        period={"start": "2026-02-15T09:00:00Z", "end": "2026-02-15T09:30:00Z"},
    ),
    "MedicationStatement": medication_statement,
    "AllergyIntolerance": allergy,
}
RESOURCE_TYPES = (*VALID, "Consent", "Bundle", "OperationOutcome", "Practitioner", "patient", "")

PATIENT_URL = "urn:uuid:dddddddd-0000-4000-8000-000000000001"


def valid_bundle(kind: str, mrn: str, patient_id: str | None = None) -> dict[str, Any]:
    """A transaction or batch storing a new patient and one of each entry about them (through
    its urn:uuid), or — ``patient_id`` given — entries about a stored patient."""
    subject = PATIENT_URL if patient_id is None else f"Patient/{patient_id}"
    entries = []
    for name, make in VALID.items():
        if name == "Patient":
            continue
        if kind == "batch" and patient_id is None:
            break  # a batch cannot reference its own entries: only the patient
        resource = make("x")
        key = "patient" if "patient" in resource else "subject"
        resource[key] = {"reference": subject}
        entries.append({"resource": resource, "request": {"method": "POST", "url": name}})
    if patient_id is None:
        entries.append(
            {
                "fullUrl": PATIENT_URL,
                "resource": fhir_patient(mrn=mrn),
                "request": {"method": "POST", "url": "Patient"},
            }
        )
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


# -- mutations ------------------------------------------------------------------------------------


def _locations(document: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``document`` (the root excluded)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(document, dict):
        for key, value in document.items():
            found.append((*path, key))
            found += _locations(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.append((*path, index))
            found += _locations(value, (*path, index))
    return found


def _containers(document: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every object and array (the root included)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(document, dict | list):
        found.append(path)
        items = document.items() if isinstance(document, dict) else enumerate(document)
        for key, value in items:
            found += _containers(value, (*path, key))
    return found


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        document = document[part]
    return document


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def bad_references(ids: dict[str, str]) -> st.SearchStrategy[str]:
    known = [f"{kind}/{value}" for kind, value in sorted(ids.items())]
    return st.one_of(
        st.sampled_from(
            [
                "Patient/",
                "Patient",
                "/Patient/x",
                "Patient/../../Patient/x",
                "Patient/00000000-0000-4000-8000-000000000000",
                "Patient/" + "a" * 65,
                "Patient/ü",
                "Patient/a b",
                "Patient/x/_history/1",
                "urn:uuid:nope",
                "urn:uuid:dddddddd-0000-4000-8000-000000000002",
                PATIENT_URL,
                "#contained",
                "http://elsewhere.example.org/fhir/Patient/x",
                "Practitioner/dr-77",
                "",
            ]
        ),
        st.sampled_from(known) if known else st.nothing(),
        texts,
    )


weird_dates = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00Z",
            "0001-01-01",
            "9999-12-31T23:59:59-14:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31",
            "9999",
            "9999-12",
            "2026-02-30",
            "2026-13",
            "2026",
            "2026-11-15T08:30:00",
            "2026-11-15T24:00:00Z",
            "2026-11-15T08:30:00.123456789Z",
            "2026-11-15T08:30:00+25:00",
            "2026-11-15 08:30:00Z",
            "20261115",
            "-2026-01-01",
            "+002026-01-01",
        ]
    ),
    texts,
)


@st.composite
def mutated(draw: st.DrawFn, valid: Any, ids: dict[str, str] | None = None) -> Any:
    """``valid`` with one to four mutations: an element deleted, duplicated (same key twice in
    the text), replaced by arbitrary JSON, by a value of the wrong type, by a token the encoder
    cannot write (NaN, 1e999999, a 4,301-digit number, 200,000 nested brackets, a 1.2 MB
    string), by nasty text; a date made impossible; a number made extreme; a reference aimed
    elsewhere; the resourceType changed; an unknown element added."""
    document = copy.deepcopy(valid)
    # Mostly one mutation, so that most cases get past the first check to the next one.
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, 4]))):
        locations = _locations(document)
        operation = draw(
            st.sampled_from(
                [
                    "delete",
                    "duplicate",
                    "replace",
                    "wrong-type",
                    "raw",
                    "text",
                    "date",
                    "number",
                    "reference",
                    "resource-type",
                    "add",
                ]
            )
        )
        if operation == "resource-type":
            document["resourceType"] = draw(st.one_of(st.sampled_from(RESOURCE_TYPES), json_values))
            continue
        if operation == "add" or not locations:
            path = draw(st.sampled_from(_containers(document)))
            container = _get(document, path)
            value = draw(st.one_of(json_values, raw_tokens))
            if isinstance(container, dict):
                container[draw(texts)] = value
            else:
                container.insert(draw(st.integers(0, len(container))), value)
            continue
        if operation == "date":
            dated = [p for p in locations if p[-1] in DATE_KEYS]
            path = draw(st.sampled_from(dated or locations))
        elif operation == "reference":
            refs = [p for p in locations if p[-1] in REFERENCE_KEYS]
            path = draw(st.sampled_from(refs or locations))
        elif operation == "number":
            numbers = [p for p in locations if _is_number(_get(document, p))]
            path = draw(st.sampled_from(numbers or locations))
        else:
            path = draw(st.sampled_from(locations))
        parent = _get(document, path[:-1])
        key = path[-1]
        if operation == "delete":
            del parent[key]
        elif operation == "duplicate":
            if isinstance(parent, dict) and not isinstance(parent[key], DuplicateKey):
                parent[f"\u0002dup{len(parent)}"] = DuplicateKey(
                    str(key), draw(st.one_of(json_values, st.just(copy.deepcopy(parent[key]))))
                )
            elif isinstance(parent, list):
                parent.insert(key, copy.deepcopy(parent[key]))
        elif operation == "replace":
            parent[key] = draw(json_values)
        elif operation == "wrong-type":
            parent[key] = copy.deepcopy(draw(wrong_types))  # the examples are shared
        elif operation == "raw":
            parent[key] = draw(raw_tokens)
        elif operation == "text":
            parent[key] = draw(texts)
        elif operation == "date":
            parent[key] = draw(weird_dates)
        elif operation == "number":
            parent[key] = draw(interesting_numbers)
        elif operation == "reference":
            parent[key] = draw(bad_references(ids or {}))
    return document


def set_at(path: str, value: Any) -> Callable[[Any], Any]:
    """A mutation setting one element (``a.0.b``) of a document, for regression examples."""

    def mutate(document: Any) -> Any:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = document
        for part in parents:
            target = target[part]
        target[last] = value
        return document

    return mutate


# -- malformed bodies -----------------------------------------------------------------------------

CONTENT_TYPES = st.sampled_from(
    [
        None,
        "",
        "application/fhir+json",
        "application/json",
        "application/fhir+json; charset=utf-8",
        "application/fhir+json; charset=latin-1",
        "APPLICATION/FHIR+JSON",
        "application/fhir+xml",
        "application/xml",
        "text/plain",
        "text/csv",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "application/json; charset=utf-16",
        "*/*",
        "application/",
        ";",
        "application/fhir+json;;;",
    ]
)


@st.composite
def malformed_bodies(draw: st.DrawFn, valid: Any) -> bytes:
    """Bytes that are not the JSON document they claim to be: random bytes, the valid
    document truncated, with invalid UTF-8 spliced in, in UTF-16/32, behind a BOM, with
    trailing garbage, or empty."""
    text = encode(valid)
    kind = draw(
        st.sampled_from(
            ["random", "truncated", "splice", "utf16", "utf32", "bom", "trailing", "empty", "nul"]
        )
    )
    if kind == "random":
        return draw(st.binary(max_size=200))
    if kind == "truncated":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    if kind == "splice":
        at = draw(st.integers(0, len(text)))
        junk = draw(
            st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80\x80"])
        )
        return text[:at] + junk + text[at:]
    if kind == "utf16":
        return text.decode().encode(draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be"])))
    if kind == "utf32":
        return text.decode().encode("utf-32")
    if kind == "bom":
        return b"\xef\xbb\xbf" + text
    if kind == "trailing":
        return text + draw(st.sampled_from([b"}", b"]", b",", b" x", b"\x00", b"{}"]))
    if kind == "nul":
        return text.replace(b":", b":\x00", 1)
    return b""
