"""The override read side (SQLite and PostgreSQL): the sign-off queue lists the clinic's
pending BLOCK overrides with the comment (audited as a read) and the evaluation explained by
its pack; a prescription's evaluations and overrides; a stored evaluation explained — each
scoped to the actor's organization and permission."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from clinicos.bootstrap import Container
from clinicos.cds import (
    cosign_override,
    explain_evaluation,
    order_decisions,
    pending_cosign,
    record_override,
)
from clinicos.cds.overrides import OverridePolicy
from clinicos.governance import AuditEvent
from clinicos.identity import member_actor
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import NotFound, PermissionDenied
from clinicos.records import (
    ObservationFields,
    PatientFields,
    PrescriptionFields,
    PrescriptionRefused,
    create_prescription,
    issue_prescription,
    record_observation,
    register_patient,
)
from tests.support.identity_fixtures import create_org, create_user

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
COMMENT = "Pt Ana Quispe: nephrology agrees, reassess in 48 h"
POLICY = OverridePolicy(reason_codes=("benefit_outweighs_risk", "other"))


async def staff(container: Container, slug: str) -> dict[str, Actor]:
    org_id = await create_org(container, slug)
    actors: dict[str, Actor] = {}
    for role in ("clinician", "pharmacist"):
        email = f"{role}@{slug}.example"
        await create_user(container, org_id, email, roles=(role,), slug=slug)
        actors[role] = await member_actor(container.uow, organization_slug=slug, email=email)
    return actors


async def blocked_draft(container: Container, clinician: Actor) -> tuple[str, str]:
    """A 60-year-old man at CrCl 29.0 (80 x 78.3 / (72 x 3.0)) with a dabigatran 150 mg BID
    draft for DVT/PE, refused by the prescribing gate: (prescription id, evaluation id)."""
    c = container
    today = c.clock.now().date()
    view = await register_patient(
        uows=c.uow,
        phi=c.phi,
        actor=clinician,
        values=PatientFields(
            mrn="P-BLOCK",
            given_name="Ana",
            family_name="Quispe",
            sex="male",
            birth_date=date(today.year - 60, 1, 1),  # 60 on every day of this year
        ),
    )
    measured = c.clock.now() - timedelta(days=7)
    for values in (
        ObservationFields(
            code="29463-7",
            category="vital-signs",
            status="final",
            effective_at=measured,
            value=Decimal("78.3"),
            unit="kg",
        ),
        ObservationFields(
            code="2160-0",
            category="laboratory",
            status="final",
            effective_at=measured,
            value=Decimal("3.0"),
            unit="mg/dL",
        ),
    ):
        await record_observation(
            uows=c.uow, phi=c.phi, actor=clinician, patient_id=view.id, values=values
        )
    draft = await create_prescription(
        uows=c.uow,
        phi=c.phi,
        actor=clinician,
        patient_id=view.id,
        values=PrescriptionFields(
            code_system=RXNORM,
            code="1546356",
            display="dabigatran",
            dose=Decimal(150),
            dose_unit="mg",
            frequency="BID",
            route="oral",
            indication="vte_treatment",
        ),
    )
    with pytest.raises(PrescriptionRefused) as refused:
        await issue_prescription(
            uows=c.uow,
            phi=c.phi,
            actor=clinician,
            patient_id=view.id,
            prescription_id=draft.id,
            check=c.prescription_check,
        )
    return draft.id, str(refused.value.data["evaluation_id"])


async def read_audits(container: Container, organization_id: str) -> int:
    async with container.uow(organization_id) as uow:
        query = select(func.count()).where(
            AuditEvent.organization_id == organization_id,
            AuditEvent.action == "cds.override_read",
        )
        return int(await uow.session.scalar(query) or 0)


async def test_pending_cosign_lists_the_clinics_pending_overrides(container: Container) -> None:
    el_alto = await staff(container, "el-alto")
    santa_cruz = await staff(container, "santa-cruz")
    clinician, pharmacist = el_alto["clinician"], el_alto["pharmacist"]
    prescription_id, evaluation_id = await blocked_draft(container, clinician)
    c = container
    assert await pending_cosign(uows=c.uow, phi=c.phi, actor=pharmacist) == []

    override = await record_override(
        uows=c.uow,
        actor=clinician,
        policy=POLICY,
        evaluation_id=evaluation_id,
        reason_code="other",
        comment=COMMENT,
        phi=c.phi,
    )
    assert override.status == "pending_cosign"

    queue = await pending_cosign(uows=c.uow, phi=c.phi, actor=pharmacist)
    assert [item.override.override_id for item in queue] == [override.override_id]
    item = queue[0]
    assert item.comment == COMMENT
    assert item.override.created_by == clinician.user_id
    evaluation = item.evaluation
    assert (evaluation.evaluation_id, evaluation.prescription_id) == (
        evaluation_id,
        prescription_id,
    )
    assert evaluation.outcome == "BLOCK" and evaluation.crcl_ml_min == Decimal("29.0")
    assert (evaluation.drug, evaluation.frequency) == ("dabigatran", "BID")
    [reason] = evaluation.reasons
    assert reason.key == "dabigatran_crcl_30_or_less_vte" and reason.severity == "BLOCK"
    assert reason.policy == "label" and reason.source is not None and "PRADAXA" in reason.source
    assert "ClCr" in reason.message("es") and "CrCl" in reason.message("en")
    # Showing the comment is a read of free text that may hold PHI: audited, once per override.
    assert await read_audits(c, clinician.organization_id) == 1

    # Another clinic sees nothing of it; a prescriber has no queue.
    assert await pending_cosign(uows=c.uow, phi=c.phi, actor=santa_cruz["pharmacist"]) == []
    with pytest.raises(PermissionDenied):
        await pending_cosign(uows=c.uow, phi=c.phi, actor=clinician)

    await cosign_override(uows=c.uow, actor=pharmacist, override_id=override.override_id)
    assert await pending_cosign(uows=c.uow, phi=c.phi, actor=pharmacist) == []


async def test_order_decisions_and_explain_are_scoped(container: Container) -> None:
    el_alto = await staff(container, "el-alto")
    santa_cruz = await staff(container, "santa-cruz")
    clinician = el_alto["clinician"]
    c = container
    prescription_id, evaluation_id = await blocked_draft(container, clinician)

    decisions = await order_decisions(uows=c.uow, actor=clinician, prescription_id=prescription_id)
    assert decisions.latest is not None and decisions.latest.evaluation_id == evaluation_id
    assert decisions.latest.prescription_version == 1 and decisions.overrides == ()

    override = await record_override(
        uows=c.uow,
        actor=clinician,
        policy=POLICY,
        evaluation_id=evaluation_id,
        reason_code="benefit_outweighs_risk",
        comment=None,
        phi=c.phi,
    )
    decisions = await order_decisions(uows=c.uow, actor=clinician, prescription_id=prescription_id)
    [entry] = decisions.overrides
    assert entry.override.override_id == override.override_id
    assert (entry.prescription_version, entry.outcome) == (1, "BLOCK")
    assert entry.override.status == "pending_cosign"

    explained = await explain_evaluation(uows=c.uow, actor=clinician, evaluation_id=evaluation_id)
    assert explained.outcome == "BLOCK"
    assert [r.key for r in explained.reasons] == ["dabigatran_crcl_30_or_less_vte"]

    other = santa_cruz["clinician"]
    with pytest.raises(NotFound):
        await explain_evaluation(uows=c.uow, actor=other, evaluation_id=evaluation_id)
    foreign = await order_decisions(uows=c.uow, actor=other, prescription_id=prescription_id)
    assert foreign.latest is None and foreign.overrides == ()
