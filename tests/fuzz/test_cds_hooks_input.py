"""Fuzzing the CDS Hooks service's input (issue 9 point 3.2): ``POST /cds-services/<id>`` with
arbitrary JSON and mutations of valid order-sign / order-select requests (the worked cases of
tests/integration/cds, their prefetch included), and ``POST /cds-services/<id>/feedback`` with
arbitrary and mutated feedback on cards the service has just issued; as a clinicos user (the
console's access token) and as a registered CDS client (a fresh signed JWT per request).

For every case: the answer arrives within seconds, is a 2xx or a 4xx (never a 5xx), every 4xx is
a problem+json naming what is wrong, and a refused request leaves every table as it was (the
client token's spent jti aside: tests/fuzz/parser_world.REFUSAL_MAY_CHANGE).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinicos.cds.overrides import REASON_SYSTEM
from tests.fuzz.parser_world import (
    ENGINE,
    TALLY,
    TIMEOUT,
    Raw,
    World,
    assert_answered,
    encode,
    fuzz_settings,
    print_tally,
    world_on,
)
from tests.fuzz.strategies import (
    CONTENT_TYPES,
    json_values,
    malformed_bodies,
    mutated,
    raw_tokens,
    set_at,
    texts,
)
from tests.integration.cds.api_cases import load_cases
from tests.integration.cds.hooks_support import (
    BASE,
    SELECT,
    SIGN,
    bearer,
    case_request,
    client_token,
    register,
    rsa_key,
)

pytestmark = [ENGINE, TIMEOUT]

ISSUER = "https://ehr.fuzz.example.org"
SERVICES = {
    SIGN: "order-sign",
    SELECT: "order-select",
}
# Cases whose order draws one WARN (G-018) or one BLOCK (G-006) card: feedback has a card to
# accept or override, and an override of a BLOCK goes down the co-sign path.
CARD_CASES = ("G-018", "G-006")
REASONS = ("patient_tolerating", "specialist_recommendation", "other", "not_a_reason", "")


class Hooks:
    """The world, plus a registered CDS client whose key signs a fresh token per request."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.key = rsa_key(kid="fuzz-hooks")
        self.world.run(
            register(self.world.harness.container, world.seeded.organization_id, ISSUER, self.key)
        )
        self.today = world.harness.clock.now().date()

    def headers(self, caller: str, path: str) -> dict[str, str]:
        if caller == "user":
            return dict(self.world.seeded.staff.headers)
        token = client_token(
            self.key, issuer=ISSUER, audience=BASE + path, now=self.world.harness.clock.now()
        )
        return bearer(token)

    def valid_request(self, case_id: str, path: str) -> dict[str, Any]:
        body = case_request(load_cases()[case_id], self.today)
        if SERVICES[path] == "order-select":
            body["hook"] = "order-select"
            body["context"]["selections"] = ["MedicationRequest/draft-1"]
        return body

    def cards(self, case_id: str) -> list[dict[str, Any]]:
        """The cards of a fresh valid order-sign call by the user (feedback needs new ones)."""
        response = self.world.request(
            "POST", SIGN, json=self.valid_request(case_id, SIGN), headers=self.headers("user", SIGN)
        )
        assert response.status_code == 200, response.text
        cards: list[dict[str, Any]] = response.json()["cards"]
        assert cards, case_id
        return cards


@pytest.fixture(scope="module")
def hooks(migrated_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooks]:
    with world_on(migrated_db_url, tmp_path_factory.mktemp("fuzz-hooks")) as world:
        yield Hooks(world)


def send(hooks: Hooks, target: str, path: str, caller: str, body: bytes, **headers: str) -> None:
    world = hooks.world
    with world.unchanged_unless_accepted() as responses:
        response = world.request(
            "POST",
            path,
            content=body,
            headers={"Content-Type": "application/json", **hooks.headers(caller, path), **headers},
        )
        responses.append(response)
    TALLY.count(target, response.status_code)
    assert_answered(response, fhir=False)
    if response.status_code == 200:
        answer = response.json()
        assert isinstance(answer.get("cards" if "feedback" not in path else "feedback"), list)


callers = st.sampled_from(["user", "client"])
languages = st.one_of(
    st.none(),
    st.sampled_from(["es", "pt-BR;q=0.9, en;q=nan", "*", "es;q=-1", "en;q=1e999"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
)


# -- service requests -----------------------------------------------------------------------------

REQUESTS = "cds-hooks-request"


@st.composite
def hook_requests(draw: st.DrawFn, hooks: Hooks) -> tuple[str, Any]:
    path = draw(st.sampled_from(list(SERVICES)))
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "arbitrary", "raw"]))
    if kind == "arbitrary":
        return path, draw(json_values)
    if kind == "raw":
        return path, draw(raw_tokens)
    case_id = draw(st.sampled_from(sorted(load_cases())))
    return path, draw(mutated(hooks.valid_request(case_id, path), {"Patient": "pat-123"}))


@fuzz_settings(60)
@given(data=st.data(), caller=callers, language=languages)
def fuzz_hook_requests(hooks: Hooks, data: Any, caller: str, language: str | None) -> None:
    path, body = data.draw(hook_requests(hooks), label="path, body")
    headers = {} if language is None else {"Accept-Language": language}
    send(hooks, REQUESTS, path, caller, encode(body), **headers)


def test_cds_hooks_requests_are_answered_with_cards_or_a_problem(
    hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz_hook_requests(hooks)
    print_tally(capsys, REQUESTS)


# Inputs that were a 500 before their fix, checked on every run (cds/hooks/mapping.py and
# schemas.py; the PR report lists each).
DRAFT = "context.draftOrders.entry.0.resource"
WEIGHT = "prefetch.weight.entry.0.resource"
CREATININE = "prefetch.creatinine.entry.0.resource"
HOOK_REGRESSIONS = [
    # _fhir_moment(): astimezone(UTC) overflowed before year 1 UTC.
    ("moment-before-year-1", set_at(f"{WEIGHT}.effectiveDateTime", "0001-01-01T00:00:00+14:00")),
    # A list where FHIR has a code: `in frozenset/dict` could not hash it.
    ("status-as-list", set_at(f"{WEIGHT}.status", ["final"])),
    ("period-unit-as-list", set_at(f"{DRAFT}.dosageInstruction.0.timing.repeat.periodUnit", ["d"])),
    # _decimal(): a creatinine of 1e-300 made Cockcroft-Gault overflow (engine failure, 500);
    # numbers past the decimal context's exponent overflowed the dose and frequency arithmetic.
    ("creatinine-1e-300", set_at(f"{CREATININE}.valueQuantity.value", 1e-300)),
    (
        "frequency-9e999999",
        set_at(f"{DRAFT}.dosageInstruction.0.timing.repeat.frequency", "9E999999"),
    ),
    (
        "dose-9e999999-g",
        set_at(
            f"{DRAFT}.dosageInstruction.0.doseAndRate.0.doseQuantity",
            {"value": "9E999999", "unit": "g"},
        ),
    ),
    # parse_body(): a draft nested past the serializer's depth limit, echoed in a suggestion,
    # failed after the evaluation and its cards had been committed.
    ("draft-nested-300-deep", set_at(f"{DRAFT}.note", Raw("[" * 300 + "]" * 300))),
    # ... and so did a lone surrogate in it (JSON's "\ud800", or its bytes \xed\xa0\x80, which
    # the JSON parser lets through), which the response could not encode.
    ("draft-status-lone-surrogate", set_at(f"{DRAFT}.status", "\ud800draft")),
]


@pytest.mark.parametrize("path", [SIGN, SELECT])
@pytest.mark.parametrize(
    "mutate", [pytest.param(mutate, id=case) for case, mutate in HOOK_REGRESSIONS]
)
def test_cds_hooks_request_regressions_answer_with_cards_or_a_problem(
    hooks: Hooks, path: str, mutate: Any
) -> None:
    body = mutate(hooks.valid_request("G-018", path))
    send(hooks, REQUESTS, path, "user", encode(body))


# -- feedback -------------------------------------------------------------------------------------

FEEDBACK = "cds-hooks-feedback"


@st.composite
def feedback_bodies(draw: st.DrawFn, cards: list[dict[str, Any]]) -> Any:
    # Well-formed feedback reaches the writes (override, co-sign, sealed comment); mutated
    # and arbitrary bodies the parser.
    kind = draw(st.sampled_from(["well-formed", "well-formed", "mutated", "mutated", "arbitrary"]))
    if kind == "arbitrary":
        return draw(json_values)
    entries = []
    for card in cards:
        outcome = draw(st.sampled_from(["accepted", "overridden"]))
        entry: dict[str, Any] = {"card": card["uuid"], "outcome": outcome}
        if outcome == "overridden":
            reason = {"system": REASON_SYSTEM, "code": draw(st.sampled_from(REASONS))}
            if draw(st.booleans()):  # the CDS Hooks 2.0 shape, else the older flat Coding
                comment = draw(st.one_of(st.text(max_size=80), texts))
                entry["overrideReason"] = {"reason": reason, "userComment": comment}
            else:
                entry["overrideReason"] = reason
        entry["outcomeTimestamp"] = "2026-03-02T09:00:00Z"
        entries.append(entry)
    body = {"feedback": entries}
    return draw(mutated(body)) if kind == "mutated" else body


@fuzz_settings(30)
@given(data=st.data(), case_id=st.sampled_from(CARD_CASES))
def fuzz_feedback(hooks: Hooks, data: Any, case_id: str) -> None:
    # Cards of the user's own fresh call: feedback from the same caller reaches the writes.
    cards = hooks.cards(case_id)
    body = data.draw(feedback_bodies(cards), label="feedback")
    send(hooks, FEEDBACK, SIGN + "/feedback", "user", encode(body))


def test_cds_hooks_feedback_is_recorded_or_refused_with_a_problem(
    hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz_feedback(hooks)
    print_tally(capsys, FEEDBACK)


# -- malformed bytes ------------------------------------------------------------------------------

MALFORMED = "cds-hooks-malformed-bytes"


@fuzz_settings(40)
@given(
    path=st.sampled_from([SIGN, SELECT, SIGN + "/feedback", SELECT + "/feedback"]),
    caller=callers,
    content_type=CONTENT_TYPES,
    data=st.data(),
)
def fuzz_malformed(
    hooks: Hooks, path: str, caller: str, content_type: str | None, data: Any
) -> None:
    valid = hooks.valid_request("G-018", path.removesuffix("/feedback"))
    body = data.draw(malformed_bodies(valid), label="body")
    world = hooks.world
    headers = hooks.headers(caller, path)
    if content_type is not None:
        headers["Content-Type"] = content_type
    with world.unchanged_unless_accepted() as responses:
        response = world.request("POST", path, content=body, headers=headers)
        responses.append(response)
    TALLY.count(MALFORMED, response.status_code)
    assert_answered(response, fhir=False)


def test_cds_hooks_malformed_bytes_are_refused_with_a_problem(
    hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz_malformed(hooks)
    print_tally(capsys, MALFORMED)
