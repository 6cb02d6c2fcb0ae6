"""PHI keyring: AES-GCM tokens bound to their cell, rotation, blind indexes, development keys."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from clinicos.config import Settings
from clinicos.kernel.errors import DomainError
from clinicos.platform.phi import (
    PhiDecryptionFailed,
    PhiKeyring,
    PhiKeyringError,
    PhiRow,
    derive_development_blind_index_key,
    derive_development_data_key,
    normalise_digits,
    normalise_text,
    reencrypt_batch,
    reencrypt_row,
    token_version,
)

K1 = bytes(range(32))
K2 = bytes(range(32, 64))
BLIND = bytes(range(64, 96))
CELL = {
    "organization_id": "org-1",
    "table": "patient",
    "column": "family_name",
    "row_id": "7f9c0a1e-row-1",
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def keyring(active: int = 1, *, keys: dict[int, bytes] | None = None) -> PhiKeyring:
    return PhiKeyring(keys or {1: K1, 2: K2}, active_version=active, blind_index_key=BLIND)


RING = keyring()


# -- encryption --------------------------------------------------------------------------------


def test_encrypt_then_decrypt_round_trips() -> None:
    token = RING.encrypt("Quispe Mamani", **CELL)

    assert token.startswith("v1:")
    assert "Quispe" not in token
    assert RING.decrypt(token, **CELL) == "Quispe Mamani"


def test_encrypt_same_value_twice_gives_different_tokens() -> None:
    assert RING.encrypt("Quispe", **CELL) != RING.encrypt("Quispe", **CELL)


def test_encrypt_and_decrypt_none_pass_through() -> None:
    assert RING.encrypt(None, **CELL) is None
    assert RING.decrypt(None, **CELL) is None
    assert RING.reencrypt(None, **CELL) is None
    assert RING.needs_reencryption(None) is False


@pytest.mark.parametrize(
    "other",
    [
        {"row_id": "7f9c0a1e-row-2"},
        {"column": "given_name"},
        {"table": "contact"},
        {"organization_id": "org-2"},
    ],
    ids=["other-row", "other-column", "other-table", "other-organization"],
)
def test_decrypt_token_moved_to_another_cell_fails(other: dict[str, str]) -> None:
    token = RING.encrypt("Quispe", **CELL)

    with pytest.raises(PhiDecryptionFailed) as info:
        RING.decrypt(token, **{**CELL, **other})

    assert "authentication failed" in info.value.reason


def test_decrypt_token_relabelled_with_another_version_fails() -> None:
    token = RING.encrypt("Quispe", **CELL)
    relabelled = "v2:" + token.partition(":")[2]

    with pytest.raises(PhiDecryptionFailed):
        RING.decrypt(relabelled, **CELL)


@pytest.mark.parametrize("position", [0, 5, 12, 20, -1], ids=["nonce", "nonce", "ct", "ct", "tag"])
def test_decrypt_tampered_byte_fails(position: int) -> None:
    token = RING.encrypt("Quispe Mamani", **CELL)
    prefix, _, body = token.partition(":")
    blob = bytearray(base64.b64decode(body))
    blob[position] ^= 0x01

    with pytest.raises(PhiDecryptionFailed):
        RING.decrypt(f"{prefix}:{b64(bytes(blob))}", **CELL)


def test_decrypt_under_other_keys_fails() -> None:
    token = RING.encrypt("Quispe", **CELL)
    stranger = PhiKeyring({1: K2}, active_version=1, blind_index_key=BLIND)

    with pytest.raises(PhiDecryptionFailed):
        stranger.decrypt(token, **CELL)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("Quispe", "not a PHI token"),
        ("v0:AAAA", "not a PHI token"),
        ("v1:not base64!", "not a PHI token"),
        ("v1:AAAA", "token is truncated"),
        ("v1:A===", "not a PHI token"),
        ("v1:AAA", "token body is not base64"),
    ],
)
def test_decrypt_malformed_token_fails_cleanly(token: str, reason: str) -> None:
    with pytest.raises(PhiDecryptionFailed) as info:
        RING.decrypt(token, **CELL)

    assert info.value.reason == reason


def test_decrypt_unknown_version_fails_naming_the_version_not_the_token() -> None:
    future = keyring(3, keys={1: K1, 3: K2})
    token = future.encrypt("Quispe Mamani", **CELL)

    with pytest.raises(PhiDecryptionFailed) as info:
        RING.decrypt(token, **CELL)

    error = info.value
    assert error.key_version == 3
    assert error.reason == "key version 3 is not in the keyring"
    assert (error.table, error.column, error.row_id) == ("patient", "family_name", "7f9c0a1e-row-1")
    rendered = str(error) + repr(error) + repr(vars(error))
    assert token not in rendered and token.partition(":")[2] not in rendered
    assert "Quispe" not in rendered


def test_decryption_failed_is_a_500_domain_error_without_secrets() -> None:
    token = RING.encrypt("Quispe Mamani", **CELL)

    with pytest.raises(DomainError) as info:
        RING.decrypt(token, **{**CELL, "row_id": "other"})

    assert info.value.status == 500
    assert info.value.code == "phi_decryption_failed"
    assert info.value.data == {}
    assert "Quispe" not in info.value.detail and token not in info.value.detail
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    "cell",
    [
        {**CELL, "table": "patient|x"},
        {**CELL, "column": "Family Name"},
        {**CELL, "row_id": ""},
        {**CELL, "organization_id": ""},
        {**CELL, "organization_id": "org|1"},
    ],
)
def test_encrypt_with_unsafe_cell_names_is_a_programming_error(cell: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        RING.encrypt("Quispe", **cell)


@given(st.text())
def test_decrypt_of_encrypt_is_identity_for_any_text(plaintext: str) -> None:
    token = RING.encrypt(plaintext, **CELL)

    assert RING.decrypt(token, **CELL) == plaintext


@given(st.text(min_size=4))
def test_token_never_contains_the_plaintext(plaintext: str) -> None:
    token = RING.encrypt(plaintext, **CELL)

    assert plaintext not in token


# -- rotation ----------------------------------------------------------------------------------


def test_rotation_old_tokens_decrypt_and_reencrypt_to_active_version() -> None:
    old = keyring(1).encrypt("Quispe Mamani", **CELL)
    rotated = keyring(2)

    assert rotated.decrypt(old, **CELL) == "Quispe Mamani"
    assert rotated.needs_reencryption(old) is True
    new = rotated.reencrypt(old, **CELL)
    assert token_version(new) == 2
    assert rotated.needs_reencryption(new) is False
    assert rotated.decrypt(new, **CELL) == "Quispe Mamani"
    with pytest.raises(PhiDecryptionFailed):  # v1 retired: only the v2 token still opens
        PhiKeyring({2: K2}, active_version=2, blind_index_key=BLIND).decrypt(old, **CELL)


def test_reencrypt_of_active_token_returns_it_unchanged() -> None:
    token = RING.encrypt("Quispe", **CELL)

    assert RING.reencrypt(token, **CELL) == token


def test_reencrypt_keeps_the_cell_binding() -> None:
    old = keyring(1).encrypt("Quispe", **CELL)

    with pytest.raises(PhiDecryptionFailed):
        keyring(2).reencrypt(old, **{**CELL, "row_id": "someone-else"})


def test_needs_reencryption_for_unparseable_token_is_true() -> None:
    assert RING.needs_reencryption("garbage") is True


def test_token_version_of_non_token_raises_value_error() -> None:
    with pytest.raises(ValueError):
        token_version("Quispe")


async def test_reencrypt_batch_returns_only_changed_rows_and_columns() -> None:
    v1, v2 = keyring(1), keyring(2)

    def cell(row: str, column: str) -> dict[str, str]:
        return {"organization_id": "org-1", "table": "patient", "column": column, "row_id": row}

    rows: list[PhiRow] = [
        (
            "org-1",
            "r1",
            {"family_name": v1.encrypt("Quispe", **cell("r1", "family_name")), "phone": None},
        ),
        ("org-1", "r2", {"family_name": v2.encrypt("Mamani", **cell("r2", "family_name"))}),
        (
            "org-1",
            "r3",
            {
                "family_name": v2.encrypt("Condori", **cell("r3", "family_name")),
                "given_name": v1.encrypt("Ana", **cell("r3", "given_name")),
            },
        ),
    ]

    changed = await reencrypt_batch(rows, v2, table="patient")

    assert [row_id for row_id, _ in changed] == ["r1", "r3"]
    assert set(changed[0][1]) == {"family_name"}
    assert set(changed[1][1]) == {"given_name"}
    r1_token = changed[0][1]["family_name"]
    assert token_version(r1_token) == 2
    assert v2.decrypt(r1_token, **cell("r1", "family_name")) == "Quispe"
    updates = dict(changed)
    written: list[PhiRow] = [
        (org, row_id, {**columns, **updates.get(row_id, {})}) for org, row_id, columns in rows
    ]
    assert await reencrypt_batch(written, v2, table="patient") == []  # a second pass: nothing


async def test_reencrypt_batch_with_a_broken_token_names_row_and_column() -> None:
    rows: list[PhiRow] = [("org-1", "r9", {"email": "v1:" + b64(os.urandom(40))})]

    with pytest.raises(PhiDecryptionFailed) as info:
        await reencrypt_batch(rows, keyring(2), table="patient")

    assert (info.value.row_id, info.value.column) == ("r9", "email")


def test_reencrypt_row_with_nothing_to_do_is_empty() -> None:
    token = RING.encrypt(
        "Ana", organization_id="org-1", table="patient", column="given_name", row_id="r1"
    )

    columns = {"given_name": token, "phone": None}
    assert reencrypt_row("r1", columns, RING, organization_id="org-1", table="patient") == {}


# -- blind indexes -----------------------------------------------------------------------------


def test_blind_index_is_stable_across_data_key_rotation() -> None:
    after = PhiKeyring({2: K2, 3: bytes(32)}, active_version=3, blind_index_key=BLIND)

    assert after.blind_index("Quispe", table="patient", column="family_name") == (
        RING.blind_index("Quispe", table="patient", column="family_name")
    )


def test_blind_index_differs_by_column_and_table() -> None:
    a = RING.blind_index("ana@example.com", table="patient", column="email")
    b = RING.blind_index("ana@example.com", table="patient", column="alternate_email")
    c = RING.blind_index("ana@example.com", table="contact", column="email")

    assert len({a, b, c}) == 3


def test_blind_index_differs_by_blind_index_key() -> None:
    other = PhiKeyring({1: K1}, active_version=1, blind_index_key=K2)

    assert other.blind_index("Quispe", table="patient", column="family_name") != (
        RING.blind_index("Quispe", table="patient", column="family_name")
    )


@pytest.mark.parametrize(
    "variant",
    ["ana maría quispe", "ANA MARÍA QUISPE", "  Ana   María\tQuispe \n", "Ana Mari\u0301a Quispe"],
)
def test_blind_index_equal_for_differently_cased_and_spaced_inputs(variant: str) -> None:
    assert RING.blind_index(variant, table="patient", column="full_name") == RING.blind_index(
        "Ana María Quispe", table="patient", column="full_name"
    )


def test_blind_index_distinguishes_different_values() -> None:
    assert RING.blind_index("Ana", table="patient", column="given_name") != RING.blind_index(
        "Ana B", table="patient", column="given_name"
    )
    assert RING.blind_index("Ana", table="patient", column="given_name") != RING.blind_index(
        "Anna", table="patient", column="given_name"
    )


@given(st.text(min_size=1))
def test_blind_index_is_never_a_plain_hash_of_the_value(value: str) -> None:
    index = RING.blind_index(value, table="patient", column="family_name")
    assume(index is not None)
    assert index is not None

    plain = {
        hashlib.sha256(value.encode("utf-8")).hexdigest(),
        hashlib.sha256(normalise_text(value).encode("utf-8")).hexdigest(),
    }
    assert index not in plain
    assert len(index) == 64 and int(index, 16) >= 0


@pytest.mark.parametrize("blank", [None, "", "   \t\n"])
def test_blind_index_of_none_or_blank_is_none(blank: str | None) -> None:
    assert RING.blind_index(blank, table="patient", column="phone") is None


def test_blind_index_with_unsafe_column_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        RING.blind_index("x", table="patient", column="phone|email")


def test_normalise_text_folds_case_width_and_whitespace() -> None:
    assert normalise_text("  STRASSE  Straße\u00a0\uff21\uff22\uff23 ") == "strasse strasse abc"


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("+591 (2) 211-0000", "59122110000"),
        ("\uff15\uff19\uff11 \uff17\uff10\uff10", "591700"),  # full-width digits
        ("\u0665\u0669\u0661", "591"),  # Arabic-Indic digits
        ("n/a", ""),
    ],
)
def test_normalise_digits_keeps_only_ascii_digits(raw: str, digits: str) -> None:
    assert normalise_digits(raw) == digits


def test_blind_index_of_phone_numbers_matches_after_normalise_digits() -> None:
    def index(phone: str) -> str | None:
        return RING.blind_index(normalise_digits(phone), table="patient", column="phone")

    assert index("+591 (2) 211-0000") == index("59122110000")


# -- keyring construction and development keys -------------------------------------------------


def test_development_keys_are_deterministic_per_secret_and_differ_across_secrets() -> None:
    a = "a" * 40
    assert derive_development_data_key(a, 1) == derive_development_data_key(a, 1)
    assert derive_development_data_key(a, 1) != derive_development_data_key("b" * 40, 1)
    assert derive_development_data_key(a, 1) != derive_development_data_key(a, 2)
    assert derive_development_blind_index_key(a) == derive_development_blind_index_key(a)
    assert derive_development_blind_index_key(a) != derive_development_blind_index_key("b" * 40)
    assert derive_development_blind_index_key(a) != derive_development_data_key(a, 1)
    assert len(derive_development_data_key(a, 1)) == 32


def test_from_settings_without_keys_derives_a_development_keyring() -> None:
    first = PhiKeyring.from_settings(Settings(secret_key="s" * 40))
    again = PhiKeyring.from_settings(Settings(secret_key="s" * 40))
    other = PhiKeyring.from_settings(Settings(secret_key="t" * 40))
    token = first.encrypt("Quispe", **CELL)

    assert first.development is True
    assert first.versions == (1,)
    assert again.decrypt(token, **CELL) == "Quispe"
    assert again.blind_index("Quispe", table="patient", column="family_name") == (
        first.blind_index("Quispe", table="patient", column="family_name")
    )
    with pytest.raises(PhiDecryptionFailed):
        other.decrypt(token, **CELL)


def test_from_settings_without_keys_derives_versions_up_to_the_active_one() -> None:
    ring = PhiKeyring.from_settings(Settings(phi={"active_version": 3}))

    assert ring.versions == (1, 2, 3) and ring.active_version == 3


def test_from_settings_with_configured_keys_uses_them() -> None:
    settings = Settings(
        phi={
            "keys": {"1": b64(K1), "2": b64(K2)},
            "active_version": 2,
            "blind_index_key": b64(BLIND),
        }
    )

    ring = PhiKeyring.from_settings(settings)

    assert ring.development is False
    assert ring.versions == (1, 2) and ring.active_version == 2
    assert ring.decrypt(RING.encrypt("Quispe", **CELL), **CELL) == "Quispe"
    assert "K1" not in repr(ring) and b64(K1) not in repr(ring)


def test_from_settings_accepts_url_safe_base64() -> None:
    raw = bytes([0xFB] * 32)  # encodes with "+" and "/" in standard base64
    url_safe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    settings = Settings(phi={"keys": {"1": url_safe}, "blind_index_key": b64(BLIND)})

    ring = PhiKeyring.from_settings(settings)

    expected = PhiKeyring({1: raw}, active_version=1, blind_index_key=BLIND)
    assert expected.decrypt(ring.encrypt("x", **CELL), **CELL) == "x"


@pytest.mark.parametrize(
    ("phi", "variable"),
    [
        ({"keys": {"1": "too-short"}}, "CLINICOS_PHI__KEYS"),
        ({"keys": {"1": b64(K1)}, "active_version": 2}, "CLINICOS_PHI__ACTIVE_VERSION"),
        ({"keys": {"1": b64(K1)}, "blind_index_key": "!!"}, "CLINICOS_PHI__BLIND_INDEX_KEY"),
        ({"keys": {"1": b64(K1)}, "blind_index_key": b64(K1)}, "CLINICOS_PHI__BLIND_INDEX_KEY"),
    ],
)
def test_from_settings_with_bad_keys_names_the_variable(
    phi: dict[str, object], variable: str
) -> None:
    with pytest.raises(PhiKeyringError) as info:
        PhiKeyring.from_settings(Settings(phi=phi))

    assert str(info.value).startswith(variable)
    assert b64(K1) not in str(info.value)


def test_keyring_refuses_wrong_size_keys() -> None:
    with pytest.raises(PhiKeyringError):
        PhiKeyring({1: b"short"}, active_version=1, blind_index_key=BLIND)
    with pytest.raises(PhiKeyringError):
        PhiKeyring({}, active_version=1, blind_index_key=BLIND)
