"""PHI key rotation on real patient rows, on SQLite and PostgreSQL: `clinicos keys add | promote
| reencrypt | retire | status` end to end, refusals, resumable and idempotent re-encryption,
compare-and-set against a concurrent edit, and reads (and edits) that keep working while the
rotation runs.

The CLI runs in a worker thread with its own event loop and its own keyring, as a separate
process would; the test's container plays the long-running API process whose keyring follows
the key file.
"""

from __future__ import annotations

import asyncio
import json
import re
import stat
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from clinicos import cli as cli_module
from clinicos.bootstrap import Container, all_models_metadata, build_container
from clinicos.config import (
    Environment,
    PhiSettings,
    Settings,
    normalize_database_url,
    read_phi_key_file,
)
from clinicos.governance import AuditEvent
from clinicos.kernel.actor import Actor
from clinicos.platform.db.engine import create_owner_engine
from clinicos.platform.phi import PhiKeyring, encrypted_columns
from clinicos.platform.phi_rotation import (
    add_key_version,
    count_by_version,
    new_key_file,
    promote_key_version,
    reencrypt_all,
    update_key_file,
    write_key_file,
)
from clinicos.records.services.patients import (
    Address,
    PatientFields,
    PatientSearch,
    PatientView,
    get_patient,
    register_patient,
    search_patients,
    update_patient,
)
from tests.conftest import truncate_all
from tests.support.tenancy_fixtures import new_member, new_organization

runner = CliRunner()
COLUMNS = encrypted_columns(all_models_metadata())
CELLS_PER_PATIENT = 8  # every demographic below is set


def person(i: int) -> PatientFields:
    return PatientFields(
        mrn=f"MRN-{i:04d}",
        given_name=f"Ana {i}",
        family_name=f"Quispe Mamani {i}",
        sex="female",
        birth_date=date(1950 + i, 3, 14),
        national_id=f"48213{i:02d} LP",
        phone=f"+591 2 211-{i:04d}",
        email=f"ana.{i}@example.bo",
        address=Address(lines=(f"Av. 6 de Marzo {i}",), city="El Alto", country="BO"),
        preferred_language="es",
    )


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A key file holding one random version (1, active) and a blind-index key."""
    path = tmp_path / "keys" / "phi-keys.json"
    write_key_file(path, new_key_file())
    return path


async def _container(settings: Settings, key_file: Path) -> AsyncIterator[Container]:
    c = build_container(settings.model_copy(update={"phi": PhiSettings(key_file=key_file)}))
    try:
        yield c
    finally:
        await truncate_all(c)
        await c.dispose()


@pytest.fixture
async def api(settings: Settings, key_file: Path) -> AsyncIterator[Container]:
    """The long-running API process: its keyring follows the key file."""
    async for c in _container(settings, key_file):
        yield c


@pytest.fixture
async def owner(api: Container) -> AsyncIterator[AsyncEngine]:
    engine = create_owner_engine(api.settings)
    try:
        yield engine
    finally:
        await engine.dispose()


def cli_env(c: Container, tmp_path: Path) -> dict[str, str | None]:
    assert c.settings.database_url is not None
    env: dict[str, str | None] = {
        "CLINICOS_DATABASE_URL": c.settings.database_url,
        "CLINICOS_ENV": "test",
        "CLINICOS_VAR_DIR": str(tmp_path / "cli-var"),
        "CLINICOS_PHI__KEY_FILE": str(c.settings.phi.key_file) if c.settings.phi.key_file else None,
        "CLINICOS_PHI__KEYS": None,
        "CLINICOS_PHI__ACTIVE_VERSION": None,
        "CLINICOS_PHI__BLIND_INDEX_KEY": None,
    }
    if c.engine.dialect.name == "postgresql":
        env["CLINICOS_DATABASE__APP_ROLE"] = "clinicos_app"
    return env


async def cli(env: dict[str, str | None], *args: str) -> Result:
    """Run `clinicos <args>` in a thread (it starts its own event loop)."""
    return await asyncio.to_thread(lambda: runner.invoke(cli_module.app, list(args), env=env))


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def failed(result: Result) -> str:
    """Exit 1 with an `error:` line and no traceback; returns that line."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def summary(output: str, label: str) -> int:
    match = re.search(rf"^{re.escape(label)}:\s+(\d+)$", output, re.MULTILINE)
    assert match, output
    return int(match.group(1))


async def clinician(c: Container, slug: str) -> Actor:
    organization_id = await new_organization(c, slug)
    member = await new_member(
        c,
        organization_id=organization_id,
        organization_slug=slug,
        email=f"clinician@{slug}.example.com",
        roles=["clinician"],
    )
    return Actor(
        user_id=member.user_id,
        organization_id=organization_id,
        roles=frozenset({"clinician"}),
        permissions=frozenset(),
    )


async def register(c: Container, actor: Actor, count: int) -> list[str]:
    ids = []
    for i in range(count):
        view = await register_patient(uows=c.uow, phi=c.phi, actor=actor, values=person(i))
        ids.append(view.id)
    return ids


async def read_all(
    c: Container, actor: Actor, ids: list[str], phi: PhiKeyring | None = None
) -> dict[str, PatientView]:
    return {
        pid: await get_patient(uows=c.uow, phi=phi or c.phi, actor=actor, patient_id=pid)
        for pid in ids
    }


async def stored_tokens(engine: AsyncEngine) -> list[str]:
    tokens: list[str] = []
    async with engine.connect() as conn:
        for table, columns in COLUMNS.items():
            for column in columns:
                rows = await conn.execute(text(f"SELECT {column} FROM {table}"))
                tokens.extend(value for (value,) in rows if value is not None)
    return tokens


def promote_new_version(path: Path) -> int:
    content = update_key_file(path, lambda c: promote_key_version(*add_key_version(c)))
    return content.active_version


def sync_url(c: Container) -> str:
    assert c.settings.database_url is not None
    return normalize_database_url(c.settings.database_url).replace("+aiosqlite", "")


# -- the commands end to end --------------------------------------------------------------------


async def test_add_promote_reencrypt_retire_when_run_in_order_leave_only_the_new_key(
    api: Container, owner: AsyncEngine, key_file: Path, tmp_path: Path
) -> None:
    actor = await clinician(api, "rot-e2e")
    ids = await register(api, actor, 5)
    before = await read_all(api, actor, ids)
    env = cli_env(api, tmp_path)
    cells = 5 * CELLS_PER_PATIENT

    added = ok(await cli(env, "keys", "add"))
    status_added = ok(await cli(env, "keys", "status"))
    promoted = ok(await cli(env, "keys", "promote", "2"))
    refused_in_use = failed(await cli(env, "keys", "retire", "1"))
    refused_active = failed(await cli(env, "keys", "retire", "2"))
    reencrypted = ok(await cli(env, "keys", "reencrypt", "--batch-size", "2"))
    retired = ok(await cli(env, "keys", "retire", "1"))
    status_retired = ok(await cli(env, "keys", "status"))

    assert "added PHI key version 2" in added and "not active" in added
    assert re.search(rf"version 1 \(active\)\s+{cells} stored values", status_added)
    assert re.search(r"version 2\s+0 stored values", status_added)
    assert "PHI key version 2 is now active" in promoted
    assert f"{cells} stored value(s) still use key version 1" in refused_in_use
    assert "version 2 is the active version" in refused_active
    assert summary(reencrypted, "rows examined") == 5
    assert summary(reencrypted, "values re-encrypted") == cells
    assert summary(reencrypted, "skipped (changed meanwhile)") == 0
    assert summary(reencrypted, "rows still under another version") == 0
    assert "retired PHI key version 1" in retired
    assert re.search(rf"version 2 \(active\)\s+{cells} stored values", status_retired)
    assert re.search(r"version 1 \(retired\)\s+0 stored values", status_retired)
    # Every stored value is under the new key, and only the new key is left to open them.
    tokens = await stored_tokens(owner)
    assert len(tokens) == cells and all(t.startswith("v2:") for t in tokens)
    content = read_phi_key_file(key_file)
    assert (sorted(content.keys), content.active_version, content.retired_versions) == (
        [2],
        2,
        (1,),
    )
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    only_new = PhiKeyring.from_settings(api.settings)
    assert only_new.versions == (2,)
    assert await read_all(api, actor, ids, only_new) == before
    # The long-running process followed the file all along and reads the same.
    assert await read_all(api, actor, ids) == before
    assert api.phi.versions == (2,)
    # The blind-index key did not change, so exact-match search still finds the patient.
    page = await search_patients(
        uows=api.uow, phi=only_new, actor=actor, criteria=PatientSearch(mrn="mrn-0003")
    )
    assert [p.id for p in page.items] == [ids[3]]
    async with owner.connect() as conn:
        audited = (
            await conn.execute(
                select(AuditEvent.action, AuditEvent.target_id, AuditEvent.outcome)
                .where(AuditEvent.action.like("keys.phi.%"))
                .order_by(AuditEvent.seq)
            )
        ).all()
    assert [tuple(a) for a in audited] == [
        ("keys.phi.add", "2", "success"),
        ("keys.phi.promote", "2", "success"),
        ("keys.phi.reencrypt", "2", "success"),
        ("keys.phi.retire", "1", "success"),
    ]


async def test_reencrypt_when_a_value_does_not_decrypt_reports_it_and_retire_refuses(
    api: Container, owner: AsyncEngine, key_file: Path, tmp_path: Path
) -> None:
    actor = await clinician(api, "rot-broken")
    first, second = await register(api, actor, 2)
    async with owner.begin() as conn:  # a token moved to another row: it must not open there
        await conn.execute(
            text("UPDATE patient SET mrn = (SELECT mrn FROM patient WHERE id = :a) WHERE id = :b"),
            {"a": first, "b": second},
        )
    promote_new_version(key_file)
    env = cli_env(api, tmp_path)

    result = await cli(env, "keys", "reencrypt")
    refused = failed(await cli(env, "keys", "retire", "1"))

    error = failed(result)
    assert "1 stored value(s) could not be decrypted" in error
    assert summary(result.output, "failed to decrypt") == 1
    assert summary(result.output, "values re-encrypted") == 2 * CELLS_PER_PATIENT - 1
    assert f"patient.mrn id={second} key version=1: authentication failed" in result.output
    assert "1 stored value(s) still use key version 1" in refused
    assert 1 in read_phi_key_file(key_file).keys


async def test_promote_of_an_unknown_version_is_refused_and_changes_nothing(
    api: Container, key_file: Path, tmp_path: Path
) -> None:
    before = key_file.read_bytes()

    error = failed(await cli(cli_env(api, tmp_path), "keys", "promote", "7"))

    assert "version 7 is not in the key file (versions 1)" in error
    assert key_file.read_bytes() == before


# -- re-encryption: resumable, idempotent, compare-and-set ---------------------------------------


class Interrupted(Exception):
    pass


async def test_reencrypt_when_interrupted_after_a_batch_resumes_and_is_idempotent(
    api: Container, owner: AsyncEngine, key_file: Path
) -> None:
    actor = await clinician(api, "rot-resume")
    ids = await register(api, actor, 5)
    before = await read_all(api, actor, ids)
    promote_new_version(key_file)
    ring = PhiKeyring.from_settings(api.settings)

    def stop(_table: str, _rows: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        await reencrypt_all(owner, ring, COLUMNS, batch_size=2, on_batch=stop)
    halfway = await count_by_version(owner, COLUMNS, [1, 2])
    resumed = await reencrypt_all(owner, ring, COLUMNS, batch_size=2)
    again = await reencrypt_all(owner, ring, COLUMNS, batch_size=2)
    done = await count_by_version(owner, COLUMNS, [1, 2])

    # The first batch (two rows) committed before the interruption; the rest waited.
    assert dict(halfway.by_version) == {1: 3 * CELLS_PER_PATIENT, 2: 2 * CELLS_PER_PATIENT}
    assert (resumed.rows_examined, resumed.cells_reencrypted) == (3, 3 * CELLS_PER_PATIENT)
    assert resumed.complete
    assert (again.rows_examined, again.cells_reencrypted, again.cells_skipped) == (0, 0, 0)
    assert dict(done.by_version) == {1: 0, 2: 5 * CELLS_PER_PATIENT} and done.other == 0
    assert await read_all(api, actor, ids) == before


async def test_reencrypt_leaves_a_value_edited_meanwhile_alone_and_the_next_run_takes_it(
    api: Container, owner: AsyncEngine, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actor = await clinician(api, "rot-cas")
    ids = await register(api, actor, 3)
    target = sorted(ids)[1]
    old_process = PhiKeyring.from_settings(api.settings)  # still knows only version 1
    promote_new_version(key_file)
    ring = PhiKeyring.from_settings(api.settings)
    edited_token = old_process.encrypt(
        "Edited Meanwhile",
        organization_id=actor.organization_id,
        table="patient",
        column="family_name",
        row_id=target,
    )
    reencrypt = ring.reencrypt

    def reencrypt_then_someone_edits(token: str, **cell: str) -> str:
        new = reencrypt(token, **cell)  # type: ignore[arg-type]
        if (cell["row_id"], cell["column"]) == (target, "family_name"):
            # Between the rotation's read and its write, another process saves an edit.
            engine = create_engine(sync_url(api))
            try:
                with engine.begin() as conn:
                    conn.execute(
                        text("UPDATE patient SET family_name = :v WHERE id = :id"),
                        {"v": edited_token, "id": target},
                    )
            finally:
                engine.dispose()
        return new

    monkeypatch.setattr(ring, "reencrypt", reencrypt_then_someone_edits)

    first = await reencrypt_all(owner, ring, COLUMNS, batch_size=10)
    after_first = await get_patient(uows=api.uow, phi=api.phi, actor=actor, patient_id=target)
    monkeypatch.undo()
    second = await reencrypt_all(owner, ring, COLUMNS, batch_size=10)
    after_second = await get_patient(uows=api.uow, phi=ring, actor=actor, patient_id=target)

    assert (first.cells_reencrypted, first.cells_skipped) == (3 * CELLS_PER_PATIENT - 1, 1)
    assert not first.complete
    assert after_first.family_name == "Edited Meanwhile"  # the edit was not overwritten
    assert (second.rows_examined, second.cells_reencrypted, second.cells_skipped) == (1, 1, 0)
    assert after_second.family_name == "Edited Meanwhile"
    assert all(t.startswith("v2:") for t in await stored_tokens(owner))


# -- rotation under concurrent reads and edits -------------------------------------------------


async def test_reencrypt_while_the_api_reads_and_edits_every_read_is_right(
    api: Container, owner: AsyncEngine, tmp_path: Path
) -> None:
    actor = await clinician(api, "rot-live")
    ids = await register(api, actor, 10)
    edited, readable = ids[0], ids[1:]
    expected = await read_all(api, actor, readable)
    env = cli_env(api, tmp_path)
    ok(await cli(env, "keys", "add"))
    ok(await cli(env, "keys", "promote", "2"))

    rotation = asyncio.create_task(cli(env, "keys", "reencrypt", "--batch-size", "1"))
    reads_during_rotation = 0

    async def reader(offset: int) -> int:
        nonlocal reads_during_rotation
        reads = 0
        while not rotation.done() or reads < len(readable):
            pid = readable[(offset + reads) % len(readable)]
            running = not rotation.done()
            view = await get_patient(uows=api.uow, phi=api.phi, actor=actor, patient_id=pid)
            assert view == expected[pid]
            reads += 1
            reads_during_rotation += running
        return reads

    async def editor() -> str:
        edits, phone = 0, ""
        while not rotation.done() or edits < 3:
            phone = f"+591 2 277-{edits:04d}"
            await update_patient(
                uows=api.uow, phi=api.phi, actor=actor, patient_id=edited, changes={"phone": phone}
            )
            edits += 1
        return phone

    *reads, last_phone, result = await asyncio.gather(
        reader(0), reader(3), reader(6), editor(), rotation
    )
    ok(result)
    # Edits by a process that had not yet seen the promotion may be left under version 1: a
    # second run (nothing else running now) picks them up.
    ok(await cli(env, "keys", "reencrypt"))

    assert reads_during_rotation > 0
    assert all(n >= len(readable) for n in reads)
    final = await get_patient(uows=api.uow, phi=api.phi, actor=actor, patient_id=edited)
    assert final.phone == last_phone  # no edit was overwritten by the rotation
    assert await read_all(api, actor, readable) == expected
    counts = await count_by_version(owner, COLUMNS, [1, 2])
    assert counts.by_version[1] == 0 and counts.other == 0
    ok(await cli(env, "keys", "retire", "1"))
    assert await read_all(api, actor, readable) == expected


# -- creating the key file ---------------------------------------------------------------------


@pytest.fixture
async def dev_api(settings: Settings, tmp_path: Path) -> AsyncIterator[Container]:
    """An API process configured with a key file that does not exist yet."""
    async for c in _container(settings, tmp_path / "new" / "phi-keys.json"):
        yield c


async def test_add_without_a_key_file_creates_it_from_the_development_keys(
    dev_api: Container, tmp_path: Path
) -> None:
    path = dev_api.settings.phi.key_file
    assert path is not None and not path.exists()
    actor = await clinician(dev_api, "rot-dev")
    ids = await register(dev_api, actor, 2)
    before = await read_all(dev_api, actor, ids)
    env = cli_env(dev_api, tmp_path)

    added = ok(await cli(env, "keys", "add"))
    ok(await cli(env, "keys", "promote", "2"))
    ok(await cli(env, "keys", "reencrypt"))
    ok(await cli(env, "keys", "retire", "1"))

    assert f"created PHI key file {path} from the current (development) keys" in added
    assert "added PHI key version 2" in added
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await read_all(dev_api, actor, ids) == before
    assert not dev_api.phi.development and dev_api.phi.versions == (2,)


async def test_add_with_no_key_file_configured_is_refused(
    container: Container, tmp_path: Path
) -> None:
    env = cli_env(container, tmp_path)

    error = failed(await cli(env, "keys", "add"))

    assert "no PHI key file is configured: set CLINICOS_PHI__KEY_FILE" in error


def in_production(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    prod = settings.model_copy(update={"env": Environment.production})
    monkeypatch.setattr(cli_module, "_settings", lambda **_: prod)


async def test_add_in_production_without_the_file_creates_fresh_keys_on_an_empty_database(
    dev_api: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = dev_api.settings.phi.key_file
    assert path is not None
    in_production(monkeypatch, dev_api.settings)

    out = ok(await cli({}, "keys", "add"))

    assert f"created PHI key file {path} with key version 1 (active)" in out
    content = read_phi_key_file(path)
    assert (sorted(content.keys), content.active_version) == ([1], 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_add_in_production_without_the_file_refuses_when_values_are_stored(
    dev_api: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    actor = await clinician(dev_api, "rot-prod")
    await register(dev_api, actor, 1)
    path = dev_api.settings.phi.key_file
    assert path is not None
    in_production(monkeypatch, dev_api.settings)

    error = failed(await cli({}, "keys", "add"))

    assert f"{path} does not exist but the database holds {CELLS_PER_PATIENT}" in error
    assert not path.exists()


async def test_retire_with_keys_in_the_variables_checks_and_says_what_to_remove(
    container: Container, tmp_path: Path
) -> None:
    env: dict[str, Any] = {
        **cli_env(container, tmp_path),
        "CLINICOS_PHI__KEYS": json.dumps({"1": "A" * 43 + "=", "2": "B" * 43 + "="}),
        "CLINICOS_PHI__ACTIVE_VERSION": "2",
    }

    out = ok(await cli(env, "keys", "retire", "1"))
    active = failed(await cli(env, "keys", "retire", "2"))

    assert "no stored value uses key version 1: remove it from CLINICOS_PHI__KEYS" in out
    assert "version 2 is the active version" in active
