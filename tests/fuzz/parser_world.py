"""The running app the parser fuzzers talk to, the properties every response must have, and the
run-length settings they share (test_fhir_input, test_cds_hooks_input, test_auth_headers,
test_search_params).

One app per test module, in-process (httpx ASGITransport on ``create_app``, lifespan run), on
the module's own event loop (an ``asyncio.Runner``): hypothesis drives plain synchronous tests,
each example runs its requests on that loop. The app runs on SQLite only (see ``ENGINE``).

Short pass (``make test``): a few dozen derandomized examples per test, the same ones every run.
Long pass: ``CLINICOS_FUZZ_EXAMPLES`` (the knob tests/fuzz/test_openapi.py reads too) times
``LONG_RUN_FACTOR`` examples per test, randomized; each test then prints how many cases it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
from collections import Counter
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hypothesis import HealthCheck, Phase, note
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import InvalidArgument
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import all_models_metadata
from clinicos.platform.db.engine import create_owner_engine
from tests.conftest import make_settings, truncate_all
from tests.support.identity_fixtures import Harness, identity_settings, running_app
from tests.support.tenancy_fixtures import SignedIn, new_member, new_organization, sign_in

T = TypeVar("T")

EXAMPLES_ENV = "CLINICOS_FUZZ_EXAMPLES"
LONG_RUN = EXAMPLES_ENV in os.environ
# `make fuzz` sets CLINICOS_FUZZ_EXAMPLES=40 (schemathesis examples per operation); a parser
# target gets 50 times that: 2,000 cases each.
LONG_RUN_FACTOR = 50
# "No hang": one request must finish within this many seconds (the slowest legitimate ones,
# a 1 MiB body on a loaded 2-core runner, take well under one). Enforced twice: asyncio.wait_for
# around the request (a hang fails with TimeoutError instead of blocking the suite) and
# hypothesis' deadline per example (an example makes at most a few requests plus row counts).
REQUEST_SECONDS = 5.0
EXAMPLE_DEADLINE = timedelta(seconds=3 * REQUEST_SECONDS)

# Parsing happens before any storage is touched, and the storage paths behind it (the record's
# use cases, tenancy, row-level security) are exercised on both engines by the integration
# suites and the two-tenant state machine. So the fuzzers run on SQLite only: a PostgreSQL pass
# would double the time `make test` spends here and find nothing SQLite does not.
ENGINE = pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
# pytest-timeout's 120 s per test bounds the short pass; the long one runs as long as it takes
# (each request is still bounded by REQUEST_SECONDS).
TIMEOUT = pytest.mark.timeout(0 if LONG_RUN else 120)

ROLES = ("admin", "clinician", "pharmacist", "auditor", "supervisor")
FHIR_JSON = "application/fhir+json"
PROBLEM_JSON = "application/problem+json"
# Tables a refused request may still change, and why:
#  - cds_hooks_jti: a CDS client's token is verified and its jti spent (replay protection) in its
#    own transaction before the body is read; a refused body does not give the token back.
REFUSAL_MAY_CHANGE = frozenset({"cds_hooks_jti"})
_SKIP_TABLES = {"alembic_version", "_environment_marker"}


def fuzz_settings(short_examples: int, **overrides: Any) -> hypothesis_settings:
    """Hypothesis settings for one fuzz target: ``short_examples`` derandomized examples in
    ``make test``, ``CLINICOS_FUZZ_EXAMPLES * LONG_RUN_FACTOR`` random ones in the long run."""
    examples = int(os.environ[EXAMPLES_ENV]) * LONG_RUN_FACTOR if LONG_RUN else short_examples
    options: dict[str, Any] = {
        "max_examples": examples,
        "deadline": EXAMPLE_DEADLINE,
        "derandomize": not LONG_RUN,
        # Failing inputs are kept as @example(...) regressions in the test files, not in a
        # local database that CI would not share.
        "database": None,
        "suppress_health_check": [
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
        "print_blob": True,
    }
    if not LONG_RUN:
        # The short pass replays the explicit regressions and generates; shrinking a failure
        # is for whoever investigates it (run the long pass, or drop this line locally).
        options["phases"] = (Phase.explicit, Phase.generate)
    options.update(overrides)
    return hypothesis_settings(**options)


# -- what every response must be ------------------------------------------------------------------


class Tally:
    """Cases and statuses per fuzz target, printed by the long run for docs/reliability.md."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: dict[str, Counter[int]] = {}

    def count(self, target: str, status: int) -> None:
        self.cases[target] += 1
        self.statuses.setdefault(target, Counter())[status] += 1

    def report(self, target: str) -> str:
        statuses = self.statuses.get(target, Counter())
        classes = Counter(f"{s // 100}xx" for s in statuses.elements())
        spread = ", ".join(f"{k} {v}" for k, v in sorted(classes.items()))
        return f"fuzz parsers: {target}: {self.cases[target]} cases ({spread})"


TALLY = Tally()


def print_tally(capsys: pytest.CaptureFixture[str], *targets: str) -> None:
    """In the long run, print each target's case count (also without ``-s``)."""
    if not LONG_RUN:
        return
    with capsys.disabled():
        for target in targets:
            print("\n" + TALLY.report(target))


def _nonempty_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def assert_problem(response: httpx.Response) -> dict[str, Any]:
    """An RFC 9457 problem whose detail says what is wrong (and, for a 422, names each field)."""
    assert response.headers.get("content-type", "").startswith(PROBLEM_JSON), (
        response.status_code,
        response.headers.get("content-type"),
        response.text[:500],
    )
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("status") == response.status_code, body
    assert _nonempty_text(body.get("code")) and _nonempty_text(body.get("title")), body
    assert _nonempty_text(body.get("detail")), body
    assert str(body.get("type", "")).startswith("https://clinicos.dev/problems/"), body
    if response.status_code == 422:
        errors = body.get("errors")
        assert errors, body
        assert all(
            _nonempty_text(e.get("field")) and _nonempty_text(e.get("message")) for e in errors
        )
    return body


def assert_outcome(response: httpx.Response) -> dict[str, Any]:
    """A FHIR OperationOutcome whose every issue says what is wrong (a 422's names the element)."""
    assert response.headers.get("content-type", "").startswith(FHIR_JSON), (
        response.status_code,
        response.headers.get("content-type"),
        response.text[:500],
    )
    body = response.json()
    OperationOutcome.model_validate(body)
    issues = body["issue"]
    assert issues, body
    for issue in issues:
        assert issue["severity"] == "error", body
        assert _nonempty_text(issue.get("diagnostics")), body
        if response.status_code == 422:
            assert issue.get("expression") and _nonempty_text(issue["expression"][0]), body
    return body


def assert_answered(response: httpx.Response, *, fhir: bool) -> None:
    """No 5xx; a 2xx or a 4xx, and every 4xx is an error document in the route's format."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:2000]}"
    assert 200 <= status < 300 or 400 <= status < 500, status
    if status >= 400:
        (assert_outcome if fhir else assert_problem)(response)


# -- the running app ------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the fuzzers aim at: a signed-in member holding every role the routes need, and ids
    of stored objects (references and update targets)."""

    staff: SignedIn
    organization_id: str
    ids: dict[str, str] = field(default_factory=dict)


class World:
    """The app on one loop we own, an HTTP client on it, and an owner engine to count rows."""

    def __init__(self, base_database_url: str, var_dir: Path) -> None:
        self.runner = asyncio.Runner()
        self.stack = AsyncExitStack()
        base = make_settings(base_database_url, var_dir)
        self.settings = identity_settings(base, rate_limit={"enabled": False})
        self.harness: Harness = self.run(self.stack.enter_async_context(running_app(self.settings)))
        self.client = self.harness.client
        self.owner: AsyncEngine = create_owner_engine(self.harness.container.settings)
        self._tables = [
            t.name for t in all_models_metadata().sorted_tables if t.name not in _SKIP_TABLES
        ]
        self.seeded = self.run(self._seed())

    async def _seed(self) -> Seeded:
        container = self.harness.container
        organization_id = await new_organization(container, "fuzz-parsers")
        member = await new_member(
            container,
            organization_id=organization_id,
            organization_slug="fuzz-parsers",
            email="everything@fuzz-parsers.example.com",
            roles=ROLES,
        )
        staff = await sign_in(self.client, member)
        return Seeded(staff=staff, organization_id=organization_id)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, which must complete within REQUEST_SECONDS (else TimeoutError). Inside
        a hypothesis example it is noted, so a failure report shows what was sent."""
        _note_request(method, url, kwargs)

        async def send() -> httpx.Response:
            return await asyncio.wait_for(
                self.client.request(method, url, **kwargs), timeout=REQUEST_SECONDS
            )

        return self.run(send())

    def counts(self) -> dict[str, int]:
        """Rows per application table, counted as the owner in one statement."""

        async def count() -> dict[str, int]:
            probe = ", ".join(f'(SELECT count(*) FROM "{t}")' for t in self._tables)
            async with self.owner.connect() as conn:
                row = (await conn.execute(text(f"SELECT {probe}"))).one()
            return dict(zip(self._tables, (int(v) for v in row), strict=True))

        return self.run(count())

    @contextmanager
    def unchanged_unless_accepted(self) -> Iterator[list[httpx.Response]]:
        """Collects the response of the block; if it is not a 2xx, no table (but those in
        REFUSAL_MAY_CHANGE) may hold a row more or less than before: nothing half-written."""
        before = self.counts()
        responses: list[httpx.Response] = []
        yield responses
        assert responses, "the block sent no request"
        if all(r.status_code >= 300 for r in responses):
            after = self.counts()
            changed = {
                t: (before[t], after[t])
                for t in before
                if before[t] != after[t] and t not in REFUSAL_MAY_CHANGE
            }
            assert not changed, (
                f"a refused request ({[r.status_code for r in responses]}) changed rows "
                f"(before, after): {changed}"
            )

    def close(self) -> None:
        try:
            self.run(truncate_all(self.harness.container))
            self.run(self.owner.dispose())
            self.run(self.stack.aclose())
        finally:
            self.runner.close()


def _note_request(method: str, url: str, kwargs: dict[str, Any]) -> None:
    sent = kwargs.get("content", kwargs.get("json"))
    headers = {
        k: (v if k.lower() != "authorization" else f"{str(v)[:60]}...")
        for k, v in (kwargs.get("headers") or {}).items()
    }
    with contextlib.suppress(InvalidArgument):  # outside an example: a fixture, a plain test
        note(f"{method} {url[:3000]} headers={headers} body={str(sent)[:3000]}")


@contextmanager
def world_on(migrated_db_url: str, var_dir: Path) -> Iterator[World]:
    world = World(migrated_db_url, var_dir)
    try:
        yield world
    finally:
        world.close()


# -- JSON text the standard encoder will not write --------------------------------------------


class Raw:
    """A JSON token written verbatim into an encoded document: ``NaN``, ``1e999``, a
    5,000-digit integer, 100,000 nested brackets, invalid escapes … (``encode`` places it)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 40 else f"{self.text[:20]}…({len(self.text)} chars)"
        return f"Raw({shown!r})"


class DuplicateKey:
    """Marks a member whose key, once encoded, repeats an existing key of the same object."""

    def __init__(self, key: str, value: Any) -> None:
        self.key = key
        self.value = value

    def __repr__(self) -> str:
        return f"DuplicateKey({self.key!r}, {self.value!r})"


def encode(document: Any, *, ensure_ascii: bool = True) -> bytes:
    """The document as JSON bytes, ``Raw`` tokens and ``DuplicateKey`` members written as they
    are; lone surrogates escaped (``\\ud800``), which is valid JSON text."""
    placeholders: dict[str, str] = {}

    def prepare(value: Any) -> Any:
        if isinstance(value, Raw):
            marker = f"\u0001raw{len(placeholders)}\u0001"
            placeholders[json.dumps(marker)] = value.text
            return marker
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if isinstance(item, DuplicateKey):
                    marker = f"\u0001dup{len(placeholders)}\u0001"
                    placeholders[json.dumps(marker)] = json.dumps(item.key)
                    out[marker] = prepare(item.value)
                else:
                    out[str(key)] = prepare(item)
            return out
        if isinstance(value, list | tuple):
            return [prepare(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return prepare(Raw(json.dumps(value)))
        return value

    encoded = json.dumps(prepare(document), ensure_ascii=ensure_ascii)
    for marker, raw in placeholders.items():
        encoded = encoded.replace(marker, raw, 1)
    return encoded.encode("utf-8", "surrogatepass")
