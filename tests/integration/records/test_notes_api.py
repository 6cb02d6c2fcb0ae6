"""Clinical notes over the JSON API: draft → final (immutable, hashed, signed) → addendum; drafts
private to their author; permissions per role; bounded input; the text sealed at rest and a
moved ciphertext refused; one audit entry per read or write naming the patient."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import pytest
from httpx import AsyncClient
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.platform.phi import token_version
from tests.integration.records.isolation_notes import create_encounter, create_note, finalize
from tests.integration.records.test_patients_api import audit_rows
from tests.support.records_fixtures import clinic, create_patient
from tests.support.tenancy_fixtures import assert_problem

TEXT = "S: disnea leve. O: SpO2 94 %. A: IC descompensada. P: furosemida 40 mg IV — control 6 h."


def notes_of(patient_id: str) -> str:
    return f"/api/v1/patients/{patient_id}/notes"


async def stored_note(owner_engine: AsyncEngine, note_id: str) -> dict[str, Any]:
    async with owner_engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    text("SELECT * FROM clinical_note WHERE id = :id"), {"id": note_id}
                )
            )
            .mappings()
            .one()
        )
    return dict(row)


# -- lifecycle ----------------------------------------------------------------------------------


async def test_draft_is_written_by_its_author_without_hash(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "note-draft", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)

    draft = await create_note(client, clinician, patient["id"], text=TEXT, kind="admission")

    assert draft["status"] == "draft" and draft["kind"] == "admission"
    assert draft["text"] == TEXT and draft["patient_id"] == patient["id"]
    assert draft["author_id"] == clinician.member.user_id
    assert draft["content_sha256"] is None and draft["finalized_by"] is None
    assert draft["finalized_at"] is None and draft["amends_note_id"] is None
    assert (draft["version"], draft["addenda"]) == (1, [])


async def test_finalize_stores_the_sha256_of_the_text_and_the_signer(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "note-final", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    draft = await create_note(client, nurse, patient["id"], text=TEXT, kind="nursing")

    final = await finalize(client, nurse, patient["id"], draft["id"])

    expected = hashlib.sha256(TEXT.encode("utf-8")).hexdigest()
    assert final["status"] == "final" and final["text"] == TEXT
    assert final["content_sha256"] == expected
    assert final["finalized_by"] == nurse.member.user_id == final["author_id"]
    assert datetime.fromisoformat(final["finalized_at"]).tzinfo is not None
    assert final["version"] == 2
    row = await stored_note(owner_engine, draft["id"])
    assert (row["status"], row["content_sha256"], row["finalized_by"]) == (
        "final",
        expected,
        nurse.member.user_id,
    )


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PATCH", "", {"text": "Texto reescrito."}),
        ("PATCH", "", {"kind": "consult"}),
        ("POST", "/finalize", None),
        ("POST", "/discard", None),
    ],
    ids=["edit-text", "edit-kind", "finalize-again", "discard"],
)
async def test_final_note_is_immutable_409(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    slug = f"note-imm-{method.lower()}-{suffix[1:] or next(iter(body or {}))}"
    staff = await clinic(container, client, slug, "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    draft = await create_note(client, clinician, patient["id"], text=TEXT)
    final = await finalize(client, clinician, patient["id"], draft["id"])
    before = await stored_note(owner_engine, draft["id"])

    response = await client.request(
        method,
        f"{notes_of(patient['id'])}/{draft['id']}{suffix}",
        json=body,
        headers=clinician.headers,
    )

    assert_problem(response, 409, "note_not_editable")
    assert await stored_note(owner_engine, draft["id"]) == before
    again = await client.get(f"{notes_of(patient['id'])}/{draft['id']}", headers=clinician.headers)
    assert again.json()["text"] == TEXT and again.json()["version"] == final["version"]


async def test_addendum_amends_a_final_note_and_has_its_own_lifecycle(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "note-addendum", "clinician", "nurse")
    clinician, nurse = staff["clinician"], staff["nurse"]
    patient = await create_patient(client, clinician)
    encounter = await create_encounter(client, clinician, patient["id"])
    original = await create_note(
        client, clinician, patient["id"], text=TEXT, encounter_id=encounter["id"]
    )
    await finalize(client, clinician, patient["id"], original["id"])
    note_url = f"{notes_of(patient['id'])}/{original['id']}"

    created = await client.post(
        f"{note_url}/addenda", json={"text": "Adenda: 20 mg, no 40 mg."}, headers=nurse.headers
    )
    assert created.status_code == 201, created.text
    addendum = created.json()
    seen_by_clinician_before = (await client.get(note_url, headers=clinician.headers)).json()
    seen_by_nurse = (await client.get(note_url, headers=nurse.headers)).json()
    edited = await client.patch(
        f"{notes_of(patient['id'])}/{addendum['id']}",
        json={"version": 1, "text": "Adenda: furosemida 20 mg, no 40 mg."},
        headers=nurse.headers,
    )
    assert edited.status_code == 200, edited.text
    signed = await finalize(client, nurse, patient["id"], addendum["id"])
    seen_by_clinician_after = (await client.get(note_url, headers=clinician.headers)).json()

    assert addendum["status"] == "draft" and addendum["amends_note_id"] == original["id"]
    assert addendum["author_id"] == nurse.member.user_id
    assert addendum["patient_id"] == patient["id"]
    assert addendum["encounter_id"] == encounter["id"] and addendum["kind"] == original["kind"]
    # Until it is signed the addendum is its author's alone.
    assert seen_by_nurse["addenda"] == [addendum["id"]]
    assert seen_by_clinician_before["addenda"] == []
    assert seen_by_clinician_after["addenda"] == [addendum["id"]]
    assert seen_by_clinician_after["text"] == TEXT  # the amended note itself never changed
    assert signed["text"] == "Adenda: furosemida 20 mg, no 40 mg."
    assert signed["content_sha256"] == hashlib.sha256(signed["text"].encode()).hexdigest()
    assert signed["version"] == 3


async def test_addendum_of_a_draft_is_a_409(container: Container, client: AsyncClient) -> None:
    staff = await clinic(container, client, "note-addraft", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    draft = await create_note(client, clinician, patient["id"])

    response = await client.post(
        f"{notes_of(patient['id'])}/{draft['id']}/addenda",
        json={"text": "Adenda."},
        headers=clinician.headers,
    )

    assert_problem(response, 409, "note_not_final")
    listed = await client.get(notes_of(patient["id"]), headers=clinician.headers)
    assert [n["id"] for n in listed.json()["items"]] == [draft["id"]]


async def test_author_edits_a_draft_and_a_stale_version_is_a_409(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "note-edit", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    encounter = await create_encounter(client, clinician, patient["id"])
    draft = await create_note(client, clinician, patient["id"])
    url = f"{notes_of(patient['id'])}/{draft['id']}"

    edited = await client.patch(
        url,
        json={"version": 1, "text": TEXT, "kind": "consult", "encounter_id": encounter["id"]},
        headers=clinician.headers,
    )
    stale = await client.patch(url, json={"version": 1, "text": "x"}, headers=clinician.headers)
    stale_finalize = await client.post(
        f"{url}/finalize", json={"version": 1}, headers=clinician.headers
    )

    assert edited.status_code == 200, edited.text
    assert edited.json()["text"] == TEXT and edited.json()["kind"] == "consult"
    assert edited.json()["encounter_id"] == encounter["id"] and edited.json()["version"] == 2
    assert_problem(stale, 409, "version_conflict")
    assert_problem(stale_finalize, 409, "version_conflict")
    now = (await client.get(url, headers=clinician.headers)).json()
    assert (now["text"], now["status"], now["version"]) == (TEXT, "draft", 2)


async def test_discarded_draft_is_entered_in_error_and_no_longer_editable(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "note-discard", "nurse")
    nurse = staff["nurse"]
    patient = await create_patient(client, nurse)
    draft = await create_note(client, nurse, patient["id"])
    url = f"{notes_of(patient['id'])}/{draft['id']}"

    discarded = await client.post(f"{url}/discard", headers=nurse.headers)
    edit = await client.patch(url, json={"text": "otra"}, headers=nurse.headers)
    sign = await client.post(f"{url}/finalize", headers=nurse.headers)

    assert discarded.status_code == 200, discarded.text
    assert discarded.json()["status"] == "entered-in-error"
    assert_problem(edit, 409, "note_not_editable")
    assert_problem(sign, 409, "note_not_editable")


# -- who sees a draft ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"text": "Texto de otra persona."}),
        ("POST", "/finalize", None),
        ("POST", "/discard", None),
        ("POST", "/addenda", {"text": "Adenda."}),
    ],
    ids=["read", "edit", "finalize", "discard", "amend"],
)
async def test_another_members_draft_answers_like_a_missing_note(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    slug = f"note-private-{suffix[1:] or method.lower()}"
    staff = await clinic(container, client, slug, "clinician", "nurse")
    author, colleague = staff["clinician"], staff["nurse"]
    patient = await create_patient(client, author)
    draft = await create_note(client, author, patient["id"], text=TEXT)
    before = await stored_note(owner_engine, draft["id"])
    url = notes_of(patient["id"])

    theirs = await client.request(
        method, f"{url}/{draft['id']}{suffix}", json=body, headers=colleague.headers
    )
    missing = await client.request(
        method,
        f"{url}/00000000-0000-0000-0000-000000000000{suffix}",
        json=body,
        headers=colleague.headers,
    )

    theirs_body = assert_problem(theirs, 404, "not_found")
    missing_body = assert_problem(missing, 404, "not_found")
    assert (theirs_body["title"], theirs_body["detail"]) == (
        missing_body["title"],
        missing_body["detail"],
    )
    assert TEXT not in theirs.text
    assert await stored_note(owner_engine, draft["id"]) == before


async def test_list_shows_final_notes_and_own_drafts_newest_first_with_paging(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "note-list", "clinician", "nurse")
    clinician, nurse = staff["clinician"], staff["nurse"]
    patient = await create_patient(client, clinician)
    other = await create_patient(client, clinician, mrn="OTHER-1")
    await finalize(
        client, clinician, other["id"], (await create_note(client, clinician, other["id"]))["id"]
    )
    first = await create_note(client, clinician, patient["id"], text="uno")
    await finalize(client, clinician, patient["id"], first["id"])
    mine = await create_note(client, clinician, patient["id"], text="dos")
    theirs = await create_note(client, nurse, patient["id"], text="tres")
    third = await create_note(client, clinician, patient["id"], text="cuatro")
    await finalize(client, clinician, patient["id"], third["id"])

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get(notes_of(patient["id"]), params=params, headers=clinician.headers)
        assert page.status_code == 200, page.text
        assert page.json()["patient_id"] == patient["id"]
        seen += [n["id"] for n in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    nurse_view = await client.get(notes_of(patient["id"]), headers=nurse.headers)
    finals = await client.get(
        notes_of(patient["id"]), params={"status": "final"}, headers=nurse.headers
    )

    assert seen == [third["id"], mine["id"], first["id"]]
    assert [n["id"] for n in nurse_view.json()["items"]] == [third["id"], theirs["id"], first["id"]]
    assert [n["id"] for n in finals.json()["items"]] == [third["id"], first["id"]]
    lists = [
        t
        for a, t in await audit_rows(owner_engine, clinician.member.organization_id)
        if a == "records.note.list"
    ]
    assert lists == [patient["id"]] * 4  # one entry per page read


async def test_list_filters_by_encounter(container: Container, client: AsyncClient) -> None:
    staff = await clinic(container, client, "note-by-enc", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    encounter = await create_encounter(client, clinician, patient["id"])
    linked = await create_note(client, clinician, patient["id"], encounter_id=encounter["id"])
    await create_note(client, clinician, patient["id"])

    response = await client.get(
        notes_of(patient["id"]),
        params={"encounter_id": encounter["id"]},
        headers=clinician.headers,
    )

    assert [n["id"] for n in response.json()["items"]] == [linked["id"]]


# -- permissions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("clinician", True),
        ("nurse", True),
        ("pharmacist", False),
        ("billing", False),
        ("agent", False),
        ("researcher", False),
        ("admin", False),
    ],
)
async def test_note_read_permissions_per_role(
    container: Container, client: AsyncClient, role: str, allowed: bool
) -> None:
    staff = await clinic(container, client, f"note-perm-{role}", role, "clinician")
    author = staff["clinician"]
    patient = await create_patient(client, author)
    note = await create_note(client, author, patient["id"], text=TEXT)
    await finalize(client, author, patient["id"], note["id"])
    who = staff[role]

    one = await client.get(f"{notes_of(patient['id'])}/{note['id']}", headers=who.headers)
    listed = await client.get(notes_of(patient["id"]), headers=who.headers)

    if allowed:
        assert one.status_code == 200 and one.json()["text"] == TEXT, one.text
        assert [n["id"] for n in listed.json()["items"]] == [note["id"]]
    else:
        assert_problem(one, 403, "permission_denied")
        assert_problem(listed, 403, "permission_denied")
        assert TEXT not in one.text + listed.text


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("nurse", True), ("pharmacist", False), ("billing", False), ("researcher", False)],
)
async def test_note_write_permissions_per_role(
    container: Container, client: AsyncClient, role: str, allowed: bool
) -> None:
    staff = await clinic(container, client, f"note-wperm-{role}", role, "clinician")
    patient = await create_patient(client, staff["clinician"])

    response = await client.post(
        notes_of(patient["id"]),
        json={"kind": "progress", "text": TEXT},
        headers=staff[role].headers,
    )

    if allowed:
        assert response.status_code == 201, response.text
    else:
        assert_problem(response, 403, "permission_denied")


# -- input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "progress", "text": "x" * 100_001}, "text"),
        ({"kind": "progress", "text": ""}, "text"),
        ({"kind": "progress", "text": " \n\t "}, "text"),
        ({"kind": "gossip", "text": TEXT}, "kind"),
        ({"text": TEXT}, "kind"),
        ({"kind": "progress", "text": TEXT, "status": "final"}, "status"),
        ({"kind": "progress", "text": TEXT, "author_id": "someone"}, "author_id"),
        ({"kind": "progress", "text": TEXT, "encounter_id": "e" * 37}, "encounter_id"),
    ],
    ids=[
        "too-long",
        "empty",
        "blank",
        "unknown-kind",
        "no-kind",
        "status",
        "author",
        "long-id",
    ],
)
async def test_invalid_note_is_a_422_naming_the_field(
    container: Container, client: AsyncClient, body: dict[str, Any], field: str
) -> None:
    staff = await clinic(container, client, f"note-bad-{field.replace('_', '-')}", "clinician")
    patient = await create_patient(client, staff["clinician"])

    response = await client.post(
        notes_of(patient["id"]), json=body, headers=staff["clinician"].headers
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert [e["loc"] for e in problem["errors"]] == [["body", field]]
    assert TEXT not in response.text


async def test_text_of_exactly_the_limit_is_accepted(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "note-limit", "clinician")
    patient = await create_patient(client, staff["clinician"])

    draft = await create_note(client, staff["clinician"], patient["id"], text="é" * 100_000)

    assert len(draft["text"]) == 100_000


@pytest.mark.parametrize(
    ("change", "field"),
    [({"text": None}, "text"), ({"kind": None}, "kind"), ({"status": "final"}, "status")],
)
async def test_invalid_edit_is_a_422_naming_the_field(
    container: Container, client: AsyncClient, change: dict[str, Any], field: str
) -> None:
    staff = await clinic(container, client, f"note-badedit-{field}", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    draft = await create_note(client, clinician, patient["id"])

    response = await client.patch(
        f"{notes_of(patient['id'])}/{draft['id']}", json=change, headers=clinician.headers
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert [e["loc"] for e in problem["errors"]] == [["body", field]]


async def test_encounter_of_another_patient_is_a_422_naming_encounter_id(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "note-wrong-enc", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    other = await create_patient(client, clinician, mrn="OTHER-1")
    elsewhere = await create_encounter(client, clinician, other["id"])

    response = await client.post(
        notes_of(patient["id"]),
        json={"kind": "progress", "text": TEXT, "encounter_id": elsewhere["id"]},
        headers=clinician.headers,
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert [e["loc"][-1] for e in problem["errors"]] == ["encounter_id"]


# -- audit --------------------------------------------------------------------------------------


async def test_every_read_and_write_appends_one_audit_entry_naming_the_patient(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "note-audit", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    url = notes_of(patient["id"])

    draft = await create_note(client, clinician, patient["id"])
    await client.patch(f"{url}/{draft['id']}", json={"text": TEXT}, headers=clinician.headers)
    await finalize(client, clinician, patient["id"], draft["id"])
    await client.get(f"{url}/{draft['id']}", headers=clinician.headers)
    await client.get(url, headers=clinician.headers)
    addendum = await client.post(
        f"{url}/{draft['id']}/addenda", json={"text": "Adenda."}, headers=clinician.headers
    )
    await client.post(f"{url}/{addendum.json()['id']}/discard", headers=clinician.headers)
    refused = await client.patch(
        f"{url}/{draft['id']}", json={"text": "no"}, headers=clinician.headers
    )

    assert_problem(refused, 409, "note_not_editable")
    records = await audit_rows(owner_engine, clinician.member.organization_id)
    assert records == [
        ("records.patient.create", patient["id"]),
        ("records.note.create", patient["id"]),
        ("records.note.update", patient["id"]),
        ("records.note.finalize", patient["id"]),
        ("records.note.read", patient["id"]),
        ("records.note.list", patient["id"]),
        ("records.note.amend", patient["id"]),
        ("records.note.discard", patient["id"]),
    ]  # the refused edit changed nothing and disclosed nothing


# -- at rest ------------------------------------------------------------------------------------


async def test_note_text_is_never_stored_in_plaintext(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "note-plain", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    draft = await create_note(client, clinician, patient["id"], text=TEXT)
    await client.patch(
        f"{notes_of(patient['id'])}/{draft['id']}",
        json={"text": TEXT + " Revisado."},
        headers=clinician.headers,
    )
    await finalize(client, clinician, patient["id"], draft["id"])

    row = await stored_note(owner_engine, draft["id"])
    async with owner_engine.connect() as conn:
        every_value = [
            str(v)
            for r in (await conn.execute(text("SELECT * FROM clinical_note"))).all()
            for v in r
            if v is not None
        ]

    assert token_version(row["text"]) >= 1
    assert row["text"].startswith(f"v{token_version(row['text'])}:")
    for needle in ("disnea", "furosemida", "Revisado"):
        assert not any(needle in value for value in every_value), needle


def decryption_failures() -> float:
    value = REGISTRY.get_sample_value(
        "clinicos_phi_decryption_failures_total", {"table": "clinical_note", "column": "text"}
    )
    return value or 0.0


async def test_ciphertext_copied_from_another_note_fails_to_decrypt_with_a_500(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "note-moved", "clinician")
    clinician = staff["clinician"]
    patient = await create_patient(client, clinician)
    victim = await create_note(client, clinician, patient["id"], text=TEXT)
    thief = await create_note(client, clinician, patient["id"], text="Nota sin importancia.")
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE clinical_note SET text = "
                "(SELECT text FROM clinical_note WHERE id = :victim) WHERE id = :thief"
            ),
            {"victim": victim["id"], "thief": thief["id"]},
        )
    before = decryption_failures()

    response = await client.get(
        f"{notes_of(patient['id'])}/{thief['id']}", headers=clinician.headers
    )
    listed = await client.get(notes_of(patient["id"]), headers=clinician.headers)

    body = assert_problem(response, 500, "phi_decryption_failed")
    assert "clinical_note.text" in body["detail"]
    assert "disnea" not in response.text and "importancia" not in response.text
    assert_problem(listed, 500, "phi_decryption_failed")
    assert decryption_failures() == before + 2
    still = await client.get(f"{notes_of(patient['id'])}/{victim['id']}", headers=clinician.headers)
    assert still.status_code == 200 and still.json()["text"] == TEXT
