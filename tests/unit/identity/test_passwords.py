"""Password policy (length, common passwords, the email) and argon2id hashing with rehash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinicos.identity.passwords import MIN_LENGTH, Passwords, VerifyResult, password_problems

EMAIL = "nurse.lopez@elalto.example"
COMMON = "is on the list of commonly used passwords"
FAST = {"time_cost": 1, "memory_kib": 64, "parallelism": 1}


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        pytest.param("Sh0rt-pass!", "must be at least 12 characters", id="eleven-characters"),
        pytest.param("password1234", COMMON, id="common-english"),
        pytest.param("PASSWORD1234", COMMON, id="common-any-case"),
        pytest.param("Contraseña123", COMMON, id="common-spanish"),
        pytest.param("passwordpassword", COMMON, id="common-repeated"),
        pytest.param("abcabcabcabc", COMMON, id="short-pattern-repeated"),
        pytest.param(EMAIL, "must not be the email address", id="the-email"),
        pytest.param(EMAIL.upper(), "must not be the email address", id="the-email-any-case"),
        pytest.param("aaaabbbbaaaabbbb", "has too few distinct characters", id="few-characters"),
        pytest.param("x" * 200 + "Yz1!" * 15, "must be at most 256 characters", id="too-long"),
    ],
)
def test_password_problems_refused_password_names_the_problem(password: str, problem: str) -> None:
    # Act
    problems = password_problems(password, email=EMAIL)
    # Assert
    assert problem in problems
    assert all(password not in p for p in problems)  # never echoes the password


@pytest.mark.parametrize(
    "password",
    [
        "Correct-Horse-Battery-42",
        "mi clínica en El Alto 2026",
        "x" * 8 + "Yz1!",
        "A" * 252 + "bcd1",
    ],
)
def test_password_problems_acceptable_password_has_none(password: str) -> None:
    # Act / Assert
    assert password_problems(password, email=EMAIL) == []


@given(st.text(max_size=MIN_LENGTH - 1))
def test_password_problems_anything_shorter_than_twelve_is_refused(password: str) -> None:
    # Act / Assert
    assert f"must be at least {MIN_LENGTH} characters" in password_problems(password)


def test_passwords_hash_is_argon2id_with_the_configured_parameters() -> None:
    # Act
    stored = Passwords(**FAST).hash("Correct-Horse-Battery-42")
    # Assert
    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert "Correct-Horse-Battery-42" not in stored


def test_passwords_verify_right_password_with_current_parameters_needs_no_rehash() -> None:
    # Arrange
    passwords = Passwords(**FAST)
    stored = passwords.hash("Correct-Horse-Battery-42")
    # Act
    result = passwords.verify(stored, "Correct-Horse-Battery-42")
    # Assert
    assert result.ok is True
    assert result.new_hash is None


def test_passwords_verify_right_password_with_old_parameters_returns_a_new_hash() -> None:
    # Arrange
    stored = Passwords(**FAST).hash("Correct-Horse-Battery-42")
    stronger = Passwords(time_cost=2, memory_kib=128, parallelism=1)
    # Act
    result = stronger.verify(stored, "Correct-Horse-Battery-42")
    # Assert
    assert result.ok is True
    assert result.new_hash is not None
    assert result.new_hash.startswith("$argon2id$v=19$m=128,t=2,p=1$")
    assert stronger.verify(result.new_hash, "Correct-Horse-Battery-42") == VerifyResult(ok=True)


@pytest.mark.parametrize(
    ("stored", "password"),
    [
        pytest.param("use-hash", "Wrong-Horse-Battery-42", id="wrong-password"),
        pytest.param(None, "Correct-Horse-Battery-42", id="no-stored-hash"),
        pytest.param("not-a-hash", "Correct-Horse-Battery-42", id="corrupt-hash"),
    ],
)
def test_passwords_verify_refuses(stored: str | None, password: str) -> None:
    # Arrange
    passwords = Passwords(**FAST)
    if stored == "use-hash":
        stored = passwords.hash("Correct-Horse-Battery-42")
    # Act
    result = passwords.verify(stored, password)
    # Assert
    assert result.ok is False
    assert result.new_hash is None


def test_passwords_verify_without_stored_hash_refuses_even_the_dummy_password() -> None:
    # Act
    result = Passwords(**FAST).verify(None, "dummy password for timing equalisation")
    # Assert
    assert result.ok is False


def test_passwords_unknown_user_verify_runs_argon2_with_the_configured_parameters() -> None:
    """An unknown user's sign-in must cost what a known user's does: the stand-in hash is a
    well-formed argon2id hash in the hasher's own parameters (so verify runs them), of no
    password (a random digest), made without hashing at start-up."""
    passwords = Passwords(**FAST)
    stand_in = passwords._dummy_hash
    hasher = passwords._hasher

    assert stand_in.startswith("$argon2id$")
    assert not hasher.check_needs_rehash(stand_in)  # same m, t, p, lengths as real hashes
    assert passwords.verify(stand_in, "").ok is False
    assert Passwords(**FAST)._dummy_hash != stand_in  # random salt and digest per process
