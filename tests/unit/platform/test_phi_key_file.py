"""The PHI key file: its format and validation, the settings around it, atomic owner-only writes,
version edits, and a keyring that follows the file without a restart."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from clinicos.config import (
    ConfigurationError,
    Environment,
    PhiKeyFile,
    PhiKeyFileError,
    PhiSettings,
    Settings,
    load_settings,
    parse_phi_key_file,
    read_phi_key_file,
)
from clinicos.platform.observability.logging import configure_logging
from clinicos.platform.phi import (
    PhiDecryptionFailed,
    PhiKeyring,
    PhiKeyringError,
    derive_development_blind_index_key,
    derive_development_data_key,
    keys_from_settings,
)
from clinicos.platform.phi_rotation import (
    RotationError,
    add_key_version,
    new_key_file,
    promote_key_version,
    retire_key_version,
    update_key_file,
    write_key_file,
)

K1, K2, K3 = bytes(range(32)), bytes(range(32, 64)), bytes(range(96, 128))
BLIND = bytes(range(64, 96))
CELL = {"organization_id": "org-1", "table": "patient", "column": "mrn", "row_id": "row-1"}
SECRET = "a-production-grade-secret-key-of-40-chars!"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def file_json(**overrides: object) -> str:
    data: dict[str, object] = {
        "active_version": 1,
        "keys": {"1": b64(K1), "2": b64(K2)},
        "blind_index_key": b64(BLIND),
    }
    data.update(overrides)
    return json.dumps(data)


def content(active: int = 1, keys: dict[int, bytes] | None = None) -> PhiKeyFile:
    return PhiKeyFile(active_version=active, keys=keys or {1: K1, 2: K2}, blind_index_key=BLIND)


def settings_with(path: Path, **overrides: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        secret_key=SECRET,
        phi=PhiSettings(key_file=path),
        **overrides,  # type: ignore[arg-type]
    )


def keyring_following(path: Path, check_interval: float = 0.0) -> PhiKeyring:
    return PhiKeyring.from_settings(settings_with(path), check_interval=check_interval)


# -- format ------------------------------------------------------------------------------------


def test_parse_when_valid_gives_raw_keys_and_round_trips_through_to_json() -> None:
    parsed = parse_phi_key_file(file_json(active_version=2, retired_versions=[3]))

    assert parsed.active_version == 2
    assert dict(parsed.keys) == {1: K1, 2: K2}
    assert parsed.blind_index_key == BLIND
    assert parsed.retired_versions == (3,)
    assert parse_phi_key_file(parsed.to_json()) == parsed
    assert b64(K1) not in repr(parsed)


BAD_FILES = {
    "not_json": ("{not json", "not valid JSON"),
    "not_object": ("[1, 2]", "not a JSON object"),
    "no_keys": (file_json(keys={}), "'keys' must be a non-empty object"),
    "bad_version": (file_json(keys={"one": b64(K1)}), "whole numbers from 1"),
    "version_zero": (file_json(keys={"0": b64(K1)}), "whole numbers from 1"),
    "short_key": (file_json(keys={"1": b64(K1[:16])}), "version 1: decodes to 16 bytes"),
    "not_base64": (file_json(keys={"1": "%%%"}), "version 1: not valid base64"),
    "active_missing": (file_json(active_version=3), "active version 3 is not in 'keys'"),
    "active_bool": (file_json(active_version=True), "'active_version' must be"),
    "shared_key": (file_json(keys={"1": b64(K1), "2": b64(K1)}), "versions 1 and 2 share"),
    "blind_is_data_key": (file_json(blind_index_key=b64(K2)), "equals the data key of version 2"),
    "no_blind": (file_json(blind_index_key=None), "'blind_index_key' must be"),
    "retired_in_use": (file_json(retired_versions=[2]), "version 2 is both retired"),
    "unknown_field": (file_json(extra=1), "unknown fields ['extra']"),
}


@pytest.mark.parametrize(("text", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_parse_when_invalid_names_the_problem_without_key_material(text: str, message: str) -> None:
    with pytest.raises(PhiKeyFileError) as caught:
        parse_phi_key_file(text)

    assert message in str(caught.value)
    for key in (K1, K2, BLIND):
        assert b64(key) not in str(caught.value)


def test_read_when_missing_says_so(tmp_path: Path) -> None:
    with pytest.raises(PhiKeyFileError) as caught:
        read_phi_key_file(tmp_path / "absent.json")

    assert caught.value.missing
    assert "does not exist" in str(caught.value)


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"keys": {"1": b64(K1)}}, "CLINICOS_PHI__KEYS"),
        ({"active_version": 1}, "CLINICOS_PHI__ACTIVE_VERSION"),
        ({"blind_index_key": b64(BLIND)}, "CLINICOS_PHI__BLIND_INDEX_KEY"),
    ],
)
def test_settings_with_key_file_and_a_key_variable_is_refused_naming_both(
    tmp_path: Path, extra: dict[str, object], variable: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, phi={"key_file": str(tmp_path / "k.json"), **extra})  # type: ignore[call-arg]

    assert "CLINICOS_PHI__KEY_FILE" in str(caught.value)
    assert variable in str(caught.value)


def test_settings_key_file_from_environment_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINICOS_PHI__KEY_FILE", str(tmp_path / "k.json"))

    assert Settings(_env_file=None).phi.key_file == tmp_path / "k.json"  # type: ignore[call-arg]


def production_with(path: Path) -> Settings:
    return load_settings(
        _env_file=None,
        env=Environment.production,
        secret_key=SECRET,
        database_url="postgresql://u:p@db/clinicos",
        phi={"key_file": str(path)},
    )


def test_production_with_a_valid_key_file_starts(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    write_key_file(path, content())

    assert production_with(path).phi.key_file == path


def test_production_with_a_missing_key_file_refuses_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        production_with(tmp_path / "absent.json")

    assert caught.value.problems[0][0] == "CLINICOS_PHI__KEY_FILE"
    assert "does not exist" in caught.value.problems[0][1]
    assert [var for var, _ in caught.value.problems] == ["CLINICOS_PHI__KEY_FILE"]


def test_production_with_an_invalid_key_file_refuses_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(file_json(active_version=7))

    with pytest.raises(ConfigurationError) as caught:
        production_with(path)

    assert caught.value.problems == [
        ("CLINICOS_PHI__KEY_FILE", f"{path}: active version 7 is not in 'keys'")
    ]


# -- writing -------------------------------------------------------------------------------------


def test_write_key_file_is_owner_only_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "phi.json"

    write_key_file(path, content(active=2))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_phi_key_file(path) == content(active=2)
    assert sorted(p.name for p in path.parent.iterdir()) == ["phi.json"]


def test_write_key_file_replaces_a_looser_file_with_an_owner_only_one(tmp_path: Path) -> None:
    path = tmp_path / "phi.json"
    path.write_text(file_json())
    path.chmod(0o644)

    write_key_file(path, content(active=2))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_key_file_interrupted_keeps_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "phi.json"
    write_key_file(path, content(active=1))
    before = path.read_bytes()

    def crash(_fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        write_key_file(path, content(active=2))

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phi.json"]


def test_write_key_file_refuses_content_readers_would_refuse(tmp_path: Path) -> None:
    path = tmp_path / "phi.json"
    write_key_file(path, content())

    with pytest.raises(PhiKeyFileError, match="active version 5"):
        write_key_file(path, content(active=5))

    assert read_phi_key_file(path) == content()


def test_update_key_file_of_a_missing_file_without_a_start_refuses(tmp_path: Path) -> None:
    with pytest.raises(RotationError, match="does not exist"):
        update_key_file(tmp_path / "absent.json", lambda c: c)

    assert not (tmp_path / "absent.json").exists()


# -- version edits -------------------------------------------------------------------------------


def test_add_key_version_numbers_after_every_version_ever_used() -> None:
    retired = PhiKeyFile(
        active_version=2, keys={2: K2}, blind_index_key=BLIND, retired_versions=(1, 3)
    )

    added, version = add_key_version(retired)

    assert version == 4
    assert added.active_version == 2
    assert sorted(added.keys) == [2, 4]
    assert added.keys[4] not in (K2, BLIND) and len(added.keys[4]) == 32


def test_promote_then_retire_moves_the_old_version_to_retired() -> None:
    promoted = promote_key_version(content(active=1), 2)
    retired = retire_key_version(promoted, 1)

    assert (retired.active_version, sorted(retired.keys)) == (2, [2])
    assert retired.retired_versions == (1,)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: promote_key_version(c, 9), "version 9 is not in the key file"),
        (lambda c: retire_key_version(c, 9), "version 9 is not in the key file"),
        (lambda c: retire_key_version(c, 1), "version 1 is the active version"),
    ],
)
def test_version_edits_when_impossible_are_refused(edit: object, message: str) -> None:
    with pytest.raises(RotationError, match=message):
        edit(content(active=1))  # type: ignore[operator]


def test_new_key_file_has_one_active_version_and_separate_random_keys() -> None:
    first, second = new_key_file(), new_key_file()

    assert (first.active_version, sorted(first.keys)) == (1, [1])
    assert first.keys[1] != first.blind_index_key
    assert first.keys[1] != second.keys[1]
    assert parse_phi_key_file(first.to_json()) == first


# -- a keyring following the file ------------------------------------------------------------


def test_keyring_from_key_file_uses_its_keys_not_development_ones(tmp_path: Path) -> None:
    path = tmp_path / "phi.json"
    write_key_file(path, content(active=2))

    ring = keyring_following(path)

    assert (ring.versions, ring.active_version, ring.development) == ((1, 2), 2, False)
    assert ring.key_file == path
    explicit = PhiKeyring({1: K1, 2: K2}, active_version=2, blind_index_key=BLIND)
    assert ring.decrypt(explicit.encrypt("MRN-1", **CELL), **CELL) == "MRN-1"
    assert ring.blind_index("x", table="patient", column="mrn") == explicit.blind_index(
        "x", table="patient", column="mrn"
    )


def test_keyring_reloads_a_promotion_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "phi.json"
    write_key_file(path, content(active=1))
    ring = keyring_following(path, check_interval=0.0)
    before = ring.encrypt("MRN-1", **CELL)

    update_key_file(path, lambda c: promote_key_version(c, 2))
    after = ring.encrypt("MRN-1", **CELL)

    assert before.startswith("v1:") and after.startswith("v2:")
    assert ring.active_version == 2
    assert ring.decrypt(before, **CELL) == ring.decrypt(after, **CELL) == "MRN-1"


def test_keyring_reloads_at_once_for_a_token_under_a_version_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "phi.json"
    write_key_file(path, content(active=1, keys={1: K1}))
    ring = keyring_following(path, check_interval=3600.0)  # no periodic look in this test
    update_key_file(path, lambda c: promote_key_version(add_key_version(c)[0], 2))
    cli_side = keyring_following(path)

    token = cli_side.encrypt("MRN-1", **CELL)

    assert token.startswith("v2:")
    assert ring.decrypt(token, **CELL) == "MRN-1"
    assert ring.versions == (1, 2)


def test_keyring_when_a_version_is_retired_no_longer_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "phi.json"
    write_key_file(path, content(active=1))
    ring = keyring_following(path)
    old = ring.encrypt("MRN-1", **CELL)

    update_key_file(path, lambda c: retire_key_version(promote_key_version(c, 2), 1))

    with pytest.raises(PhiDecryptionFailed) as caught:
        ring.decrypt(old, **CELL)
    assert caught.value.reason == "key version 1 is not in the keyring"


@pytest.mark.parametrize(
    "broken",
    ['{"active_version": 2, "keys": {"1": "', "[]", file_json(active_version=9)],
    ids=["half_written", "not_an_object", "invalid_keys"],
)
def test_keyring_when_reload_fails_keeps_its_keys_and_logs_without_key_material(
    tmp_path: Path, broken: str
) -> None:
    path = tmp_path / "phi.json"
    write_key_file(path, content(active=1))
    ring = keyring_following(path)
    token = ring.encrypt("MRN-1", **CELL)
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        path.write_text(broken)  # in place, as a careless editor would

        opened = ring.decrypt(token, **CELL)
        sealed = ring.encrypt("MRN-2", **CELL)
    finally:
        configure_logging("INFO", json=True)

    assert opened == "MRN-1"
    assert sealed.startswith("v1:")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    failed = [e for e in events if e["event"] == "phi_key_file_reload_failed"]
    assert len(failed) == 1, events
    assert failed[0]["path"] == str(path) and failed[0]["kept_versions"] == [1, 2]
    for key in (K1, K2, BLIND):
        assert b64(key) not in stream.getvalue()


def test_keyring_when_the_file_is_fixed_after_a_failed_reload_loads_it(tmp_path: Path) -> None:
    path = tmp_path / "phi.json"
    write_key_file(path, content(active=1))
    ring = keyring_following(path)
    path.write_text("{")
    assert ring.active_version == 1

    write_key_file(path, content(active=2))

    assert ring.active_version == 2


def test_keyring_when_the_file_disappears_keeps_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "phi.json"
    write_key_file(path, content(active=2))
    ring = keyring_following(path)
    token = ring.encrypt("MRN-1", **CELL)

    path.unlink()

    assert ring.decrypt(token, **CELL) == "MRN-1"
    assert (ring.versions, ring.active_version) == ((1, 2), 2)


def test_keyring_before_the_file_exists_uses_development_keys_then_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "phi.json"
    settings = settings_with(path)
    ring = PhiKeyring.from_settings(settings, check_interval=0.0)
    old = ring.encrypt("MRN-1", **CELL)
    assert ring.development and ring.versions == (1,)
    assert ring.blind_index("x", table="patient", column="mrn") is not None

    start, _ = keys_from_settings(settings)
    write_key_file(path, promote_key_version(add_key_version(start)[0], 2))

    assert ring.decrypt(old, **CELL) == "MRN-1"
    assert (ring.development, ring.versions, ring.active_version) == (False, (1, 2), 2)
    assert start.keys[1] == derive_development_data_key(SECRET, 1)
    assert start.blind_index_key == derive_development_blind_index_key(SECRET)


def test_keyring_in_production_without_its_key_file_refuses(tmp_path: Path) -> None:
    settings = settings_with(tmp_path / "absent.json", env=Environment.production)

    with pytest.raises(PhiKeyringError, match=r"CLINICOS_PHI__KEY_FILE: .* does not exist"):
        PhiKeyring.from_settings(settings)


def test_keyring_from_an_invalid_key_file_refuses_at_start(tmp_path: Path) -> None:
    path = tmp_path / "phi.json"
    path.write_text(file_json(active_version=4))

    with pytest.raises(PhiKeyringError, match=r"CLINICOS_PHI__KEY_FILE: .*active version 4"):
        keyring_following(path)
