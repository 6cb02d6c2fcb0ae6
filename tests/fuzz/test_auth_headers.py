"""Fuzzing the Authorization header (issue 9 point 3.3): arbitrary header values and JWT-shaped
tokens — a real access token with its header, payload or signature altered, ``alg: none``,
HMAC, an unknown or odd ``kid``, claims of the wrong types, huge and non-base64 segments — on
authenticated routes of the JSON API, the FHIR facade and the CDS Hooks service (whose bearer
may also be a registered CDS client's JWT, checked by another verifier).

Also tokens signed with the server's own key whose claims are absurd (an ``exp`` past year
9999, a ``sid`` that is an object …): what the verifier does past the signature check.

For every case: the answer arrives within seconds and is a 401 in the route's error format
(problem+json, or an OperationOutcome under /fhir) with a detail; never a 5xx, never a 2xx
unless the header carries the genuine token unchanged (a server-signed token may pass when its
changes do not matter, e.g. an extra claim), and a refused call writes nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.parser_world import (
    ENGINE,
    TALLY,
    TIMEOUT,
    World,
    assert_answered,
    fuzz_settings,
    print_tally,
    world_on,
)
from tests.fuzz.strategies import json_values, texts
from tests.integration.cds.hooks_support import BASE, SIGN, client_token, register, rsa_key

pytestmark = [ENGINE, TIMEOUT]

AUTH = "auth-header"
CDS_ISSUER = "https://ehr.fuzz-auth.example.org"
# One authenticated route per verifier and error format; GETs and a body-less hook call, so
# nothing but the header decides the answer.
ROUTES = (
    ("GET", "/api/v1/patients"),
    ("GET", "/fhir/Patient"),
    ("POST", SIGN),
)
# Claim values past what the verifier's arithmetic and the database take.
EXTREME_CLAIMS = (10**20, -(10**20), 2**63, 1e300, -1.5, "9999999999", True, None, "", [], {})
ALGORITHMS = ("EdDSA", "none", "None", "NONE", "HS256", "RS256", "ES256", "", None, 0, ["EdDSA"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def segment(value: Any) -> str:
    return b64(json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass"))


def unsegment(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


class Tokens:
    """The world, its genuine access token's parts, and a registered CDS client's signed token
    (a second verifier: tokens whose issuer is not ours go to the client check)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.genuine = world.seeded.staff.access_token
        header, payload, signature = self.genuine.split(".")
        self.header: dict[str, Any] = unsegment(header)
        self.payload: dict[str, Any] = unsegment(payload)
        self.signature = signature
        key = rsa_key(kid="fuzz-auth")
        world.run(register(world.harness.container, world.seeded.organization_id, CDS_ISSUER, key))
        client = client_token(
            key, issuer=CDS_ISSUER, audience=BASE + SIGN, now=world.harness.clock.now()
        )
        self.client_parts = client.split(".")
        codec = world.run(world.harness.container.identity.codec())
        self.kid = codec.active_kid
        self.private_key = codec.keys[codec.active_kid].private_key

    def sign(self, payload: dict[str, Any]) -> str:
        """``payload`` signed with the server's own key: what a claim of the wrong type or an
        absurd value does past the signature check (a token only the server could issue).
        Signed by hand: PyJWT's encoder refuses some of the claims the verifier must survive."""
        signing_input = f"{segment({'alg': 'EdDSA', 'typ': 'JWT', 'kid': self.kid})}."
        signing_input += segment(payload)
        assert self.private_key is not None
        return f"{signing_input}.{b64(self.private_key.sign(signing_input.encode('ascii')))}"


@pytest.fixture(scope="module")
def tokens(migrated_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tokens]:
    with world_on(migrated_db_url, tmp_path_factory.mktemp("fuzz-auth")) as world:
        yield Tokens(world)


# Header values httpx will send: visible ASCII and Latin-1, spaces and tabs (a CR or LF would be
# refused by the client, never reaching the server).
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=300,
)
schemes = st.sampled_from(
    ["Bearer", "bearer", "BEARER", "Basic", "Token", "Bearer  ", "", "Bearer\t"]
)
base64ish = st.text(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/."),
    max_size=120,
)
odd_segments = st.one_of(
    base64ish,
    header_text,
    st.sampled_from(["", "=", "====", "!!!!", "e30", "bnVsbA", "W10", "MQ", "Ig"]),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "A" * n),
)


@st.composite
def claims(draw: st.DrawFn, genuine: dict[str, Any], types: bool = True) -> Any:
    """The genuine header or payload with members removed, replaced or added."""
    altered = dict(genuine)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        key = draw(st.one_of(st.sampled_from(sorted(genuine)), texts))
        action = draw(st.sampled_from(["delete", "replace", "replace"]))
        if action == "delete":
            altered.pop(key, None)
        else:
            altered[key] = draw(json_values)
    if draw(st.booleans()):
        return altered
    return draw(st.one_of(st.just(altered), json_values)) if types else altered


@st.composite
def authorization(draw: st.DrawFn, tokens: Tokens) -> tuple[str, str]:
    """(what the header carries, the kind of fabrication) — the genuine token only by chance."""
    kind = draw(
        st.sampled_from(
            ["altered", "altered", "alg", "client", "segments", "raw", "scheme", "signed"]
        )
    )
    if kind == "signed":
        payload = draw(claims(tokens.payload, types=False))
        for name in draw(st.lists(st.sampled_from(sorted(tokens.payload)), max_size=2)):
            payload[name] = draw(st.one_of(json_values, st.sampled_from(EXTREME_CLAIMS)))
        return f"Bearer {tokens.sign(payload)}", kind
    if kind == "raw":
        return draw(header_text), kind
    if kind == "scheme":
        return f"{draw(schemes)} {draw(st.sampled_from([tokens.genuine, '', ' ']))}", kind
    if kind == "segments":
        count = draw(st.integers(min_value=0, max_value=6))
        token = ".".join(draw(st.lists(odd_segments, min_size=count, max_size=count)))
        return f"Bearer {token}", kind
    if kind == "client":
        header, payload, signature = tokens.client_parts
        parts = [header, payload, signature]
        index = draw(st.integers(min_value=0, max_value=2))
        parts[index] = draw(st.one_of(odd_segments, st.just(segment(draw(json_values)))))
        return "Bearer " + ".".join(parts), kind
    header = dict(tokens.header)
    if kind == "alg":
        header["alg"] = draw(st.sampled_from(ALGORITHMS))
        header["kid"] = draw(st.one_of(st.just(tokens.header.get("kid")), texts, json_values))
    else:
        header = draw(claims(tokens.header))
    payload = draw(claims(tokens.payload))
    signature = draw(
        st.sampled_from([tokens.signature, "", tokens.signature[:-2] + "AA", "x" * 86])
    )
    return f"Bearer {segment(header)}.{segment(payload)}.{signature}", kind


@fuzz_settings(100)
@given(route=st.sampled_from(ROUTES), data=st.data())
def fuzz_authorization_header(tokens: Tokens, route: tuple[str, str], data: Any) -> None:
    value, kind = data.draw(authorization(tokens), label="authorization")
    # A token the server's own key signed may still be acceptable (an extra claim, a missing
    # optional one); every other fabrication must be refused.
    check(tokens, route, value, must_refuse=kind != "signed")


def check(tokens: Tokens, route: tuple[str, str], value: str, *, must_refuse: bool = True) -> None:
    method, path = route
    world = tokens.world
    # As bytes: httpx refuses non-ASCII text in a header; on the wire any byte but CR/LF/NUL
    # may come (Latin-1 as it is, anything else as its UTF-8 bytes).
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raw = value.encode("utf-8")
    with world.unchanged_unless_accepted() as responses:
        response = world.request(method, path, headers={"Authorization": raw})
        responses.append(response)
    TALLY.count(AUTH, response.status_code)
    assert_answered(response, fhir=path.startswith("/fhir"))
    genuine = value.split(" ", 1)[-1].strip() == tokens.genuine
    if must_refuse and not genuine:
        assert response.status_code == 401, (response.status_code, response.text[:500])


# Hand-made forgeries, checked on every run whatever the generator draws.
FORGERIES = [
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",  # alg none; pragma: allowlist secret
    "Bearer " + segment({"alg": "none", "typ": "JWT"}) + "." + segment({"iss": "x"}) + ".",
    "Bearer " + segment({"alg": "HS256", "kid": "x"}) + "." + segment({}) + ".c2ln",
    "Bearer " + segment({"alg": "EdDSA", "kid": "no-such-key"}) + "." + segment({}) + ".c2ln",
    "Bearer " + segment({"alg": "EdDSA", "kid": ["a"]}) + "." + segment({}) + ".c2ln",
    "Bearer " + segment({"alg": "RS256", "kid": "fuzz-auth"}) + "." + segment([]) + ".c2ln",
    "Bearer " + segment([1, 2]) + "." + segment({}) + ".c2ln",
    "Bearer " + segment(None) + "." + segment(None) + "." + segment(None),
    "Bearer " + segment({"alg": "EdDSA"}) + "." + "A" * 200_000 + ".c2ln",
    "Bearer a.b.c",
    "Bearer ...",
    "Bearer !!!.@@@.###",
    "Bearer \u00e9t\u00e9",
    "Bearer " + "é" * 50,
]


@pytest.mark.parametrize("value", FORGERIES)
@pytest.mark.parametrize("route", ROUTES, ids=[path for _, path in ROUTES])
def test_known_forgeries_are_a_401(tokens: Tokens, route: tuple[str, str], value: str) -> None:
    check(tokens, route, value)


@pytest.mark.parametrize("route", ROUTES, ids=[path for _, path in ROUTES])
def test_server_signed_token_with_exp_past_year_9999_is_a_401(
    tokens: Tokens, route: tuple[str, str]
) -> None:
    # Was a 500: datetime.fromtimestamp(exp) overflowed once the signature had verified
    # (identity/tokens.py TokenCodec.decode now refuses an exp no datetime can hold).
    check(tokens, route, f"Bearer {tokens.sign({**tokens.payload, 'exp': 10**20})}")


def test_every_forged_or_garbled_authorization_is_a_401(
    tokens: Tokens, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz_authorization_header(tokens)
    print_tally(capsys, AUTH)
