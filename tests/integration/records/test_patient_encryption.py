"""Patient PHI at rest: no plaintext anywhere in the database, tokens bound to their cell, and a
token that does not open is an explicit error and an alert metric — never garbage or a blank."""

from __future__ import annotations

import hashlib
from pathlib import Path

from httpx import AsyncClient
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container, all_models_metadata
from clinicos.platform.phi import encrypted_columns, token_version
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import assert_problem

# Distinctive values, so a hit in the raw database can only be a leak.
SECRETS = {
    "mrn": "MRN-ZX81-LEAK",
    "given_name": "Wiñaypacha",
    "family_name": "Huallpamaita",
    "birth_date": "1931-07-09",
    "national_id": "7314159 OR",
    "phone": "+591 2 271-8281",
    "email": "huallpamaita@leak.example.bo",
    "address": {"lines": ["Calle Yanacocha 4242"], "city": "Sorata", "country": "BO"},
}
NEEDLES = [
    "MRN-ZX81-LEAK",
    "Wiñaypacha",
    "Huallpamaita",
    "huallpamaita",
    "1931-07-09",
    "7314159",
    "2718281",
    "271-8281",
    "leak.example.bo",
    "Yanacocha",
    "Sorata",
]


def failures(table: str, column: str) -> float:
    value = REGISTRY.get_sample_value(
        "clinicos_phi_decryption_failures_total", {"table": table, "column": column}
    )
    return value or 0.0


async def test_patient_phi_is_never_stored_in_plaintext(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine, engine_name: str
) -> None:
    staff = await clinic(container, client, "enc-plain", "clinician")
    created = await create_patient(client, staff["clinician"], **SECRETS)

    async with owner_engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    text("SELECT * FROM patient WHERE id = :id"), {"id": created["id"]}
                )
            )
            .mappings()
            .one()
        )
        # Every table's every text value, as the database holds it.
        dump: list[str] = []
        for table in all_models_metadata().sorted_tables:
            for values in (await conn.execute(table.select())).all():
                dump += [str(v) for v in values if v is not None]
    for column in encrypted_columns(all_models_metadata())["patient"]:
        assert token_version(row[column]) >= 1, column
    haystack = "\n".join(dump)
    leaks = [needle for needle in NEEDLES if needle.lower() in haystack.lower()]
    assert leaks == []
    if engine_name == "sqlite":
        # The database file itself, WAL included (what a stolen laptop disk holds).
        database = Path(make_url(container.settings.effective_database_url).database or "")
        raw = b"".join(
            p.read_bytes() for p in database.parent.glob(database.name + "*") if p.is_file()
        )
        assert raw, "the SQLite file was not found"
        raw_leaks = [n for n in NEEDLES if n.encode() in raw or n.lower().encode() in raw]
        assert raw_leaks == []


async def test_token_copied_to_another_patient_fails_loudly_with_an_alert_metric(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "enc-moved", "clinician")
    clinician = staff["clinician"]
    victim = await create_patient(client, clinician, mrn="V-1", family_name="Victim")
    thief = await create_patient(client, clinician, mrn="T-1", family_name="Thief")
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE patient SET family_name = "
                "(SELECT family_name FROM patient WHERE id = :victim) WHERE id = :thief"
            ),
            {"victim": victim["id"], "thief": thief["id"]},
        )
    before = failures("patient", "family_name")

    response = await client.get(f"/api/v1/patients/{thief['id']}", headers=clinician.headers)

    body = assert_problem(response, 500, "phi_decryption_failed")
    assert "Victim" not in response.text and "Thief" not in response.text
    assert "patient.family_name" in body["detail"]
    assert failures("patient", "family_name") == before + 1
    # The untouched patient still reads.
    ok = await client.get(f"/api/v1/patients/{victim['id']}", headers=clinician.headers)
    assert ok.status_code == 200 and ok.json()["family_name"] == "Victim"


async def test_tampered_token_fails_loudly(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "enc-tamper", "clinician")
    clinician = staff["clinician"]
    created = await create_patient(client, clinician)
    async with owner_engine.begin() as conn:
        token = await conn.scalar(
            text("SELECT email FROM patient WHERE id = :id"), {"id": created["id"]}
        )
        flipped = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
        await conn.execute(
            text("UPDATE patient SET email = :t WHERE id = :id"),
            {"t": flipped, "id": created["id"]},
        )

    response = await client.get(f"/api/v1/patients/{created['id']}", headers=clinician.headers)

    assert_problem(response, 500, "phi_decryption_failed")
    assert "example.bo" not in response.text


async def test_search_indexes_are_not_plain_hashes_of_the_value(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    """Blind indexes are keyed (HMAC): an unkeyed sha256 of the value must not match."""
    staff = await clinic(container, client, "enc-index", "clinician")
    created = await create_patient(client, staff["clinician"], **SECRETS)
    async with owner_engine.connect() as conn:
        index = await conn.scalar(
            text("SELECT mrn_index FROM patient WHERE id = :id"), {"id": created["id"]}
        )

    plain = {hashlib.sha256(v.encode()).hexdigest() for v in ("MRN-ZX81-LEAK", "mrn-zx81-leak")}
    assert index is not None and len(index) == 64 and index not in plain
