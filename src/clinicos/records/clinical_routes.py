"""The record's JSON API for a patient's observations, conditions, allergies, medication list
and prescriptions: create, list (paged, filtered), read, update; prescriptions also issue,
complete and cancel.

Reading needs ``clinical:read``; recording ``clinical:write``; prescribing ``prescription:write``.
Another organization's patient or entry answers 404, like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from clinicos.identity import Permission, require
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.platform.http.strict import IsoDatetime
from clinicos.records.clinical_schemas import (
    AllergyCreate,
    AllergyPage,
    AllergyRead,
    AllergyUpdate,
    Code,
    ComponentBody,
    ConditionCreate,
    ConditionPage,
    ConditionRead,
    ConditionUpdate,
    MedicationCreate,
    MedicationPage,
    MedicationRead,
    MedicationUpdate,
    ObservationCreate,
    ObservationPage,
    ObservationRead,
    ObservationUpdate,
    PrescriptionAction,
    PrescriptionCreate,
    PrescriptionPage,
    PrescriptionRead,
    PrescriptionUpdate,
)
from clinicos.records.schemas import StrictModel
from clinicos.records.services import clinical, medications
from clinicos.records.services.clinical import (
    AllergyClinicalStatus,
    ConditionClinicalStatus,
    ObservationCategory,
)
from clinicos.records.services.entries import MAX_PAGE, EntryPage
from clinicos.records.services.medications import PrescriptionStatus, StatementStatus

router = APIRouter(prefix="/api/v1/patients/{patient_id}", tags=["records"])

Reader = Annotated[Actor, Depends(require(Permission.clinical_read))]
Writer = Annotated[Actor, Depends(require(Permission.clinical_write))]
Prescriber = Annotated[Actor, Depends(require(Permission.prescription_write))]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=200)]


def _ctx(request: Request) -> dict[str, Any]:
    container = request.app.state.container
    return {"uows": container.uow, "phi": container.phi}


def _uows(request: Request) -> Any:
    return request.app.state.container.uow


def _components(bodies: list[ComponentBody] | None) -> tuple[clinical.Component, ...]:
    return tuple(clinical.Component(**body.model_dump()) for body in bodies or ())


def _changes(body: StrictModel) -> tuple[dict[str, Any], int | None]:
    """The fields the client sent (typed values; ``null`` clears) and the version it read."""
    sent = body.model_fields_set - {"version"}
    changes = {name: getattr(body, name) for name in sent}
    if "components" in changes:
        changes["components"] = _components(changes["components"])
    return changes, getattr(body, "version", None)


def _page(model: Any, patient_id: str, page: EntryPage) -> Any:
    return {
        "patient_id": patient_id,
        "items": [model.model_validate(row) for row in page.items],
        "next_cursor": page.next_cursor,
    }


# -- observations -------------------------------------------------------------------------------


@router.post(
    "/observations", response_model=ObservationRead, status_code=201, summary="Record a result"
)
async def create_observation(
    patient_id: str, body: ObservationCreate, request: Request, actor: Writer
) -> ObservationRead:
    values = clinical.ObservationFields(
        **body.model_dump(exclude={"components"}), components=_components(body.components)
    )
    row = await clinical.record_observation(
        **_ctx(request), actor=actor, patient_id=patient_id, values=values
    )
    return ObservationRead.model_validate(row)


@router.get(
    "/observations",
    response_model=ObservationPage,
    summary="List results, newest measurement first; filter by code, category, date range",
)
async def list_observations(
    patient_id: str,
    request: Request,
    actor: Reader,
    code: Annotated[Code | None, Query()] = None,
    category: ObservationCategory | None = None,
    effective_from: Annotated[
        IsoDatetime | None, Query(description="effective_at at or after")
    ] = None,
    effective_to: Annotated[
        IsoDatetime | None, Query(description="effective_at at or before")
    ] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    if effective_from and effective_to and effective_from > effective_to:
        raise ValidationFailed(
            "invalid fields: query.effective_to",
            errors=[FieldError(("query", "effective_to"), "must not be before effective_from")],
        )
    page = await clinical.list_observations(
        uows=_uows(request),
        actor=actor,
        patient_id=patient_id,
        criteria=clinical.ObservationFilter(
            code=code,
            category=category,
            effective_from=effective_from,
            effective_to=effective_to,
        ),
        limit=limit,
        cursor=cursor,
    )
    return _page(ObservationRead, patient_id, page)


@router.get(
    "/observations/{observation_id}", response_model=ObservationRead, summary="Read a result"
)
async def read_observation(
    patient_id: str, observation_id: str, request: Request, actor: Reader
) -> ObservationRead:
    row = await clinical.get_observation(
        uows=_uows(request), actor=actor, patient_id=patient_id, observation_id=observation_id
    )
    return ObservationRead.model_validate(row)


@router.patch(
    "/observations/{observation_id}",
    response_model=ObservationRead,
    summary="Change a result's status or value (a released result becomes amended)",
)
async def patch_observation(
    patient_id: str,
    observation_id: str,
    body: ObservationUpdate,
    request: Request,
    actor: Writer,
) -> ObservationRead:
    changes, version = _changes(body)
    row = await clinical.update_observation(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        observation_id=observation_id,
        changes=changes,
        expected_version=version,
    )
    return ObservationRead.model_validate(row)


# -- conditions ---------------------------------------------------------------------------------


@router.post(
    "/conditions", response_model=ConditionRead, status_code=201, summary="Record a condition"
)
async def create_condition(
    patient_id: str, body: ConditionCreate, request: Request, actor: Writer
) -> ConditionRead:
    row = await clinical.record_condition(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        values=clinical.ConditionFields(**body.model_dump()),
    )
    return ConditionRead.model_validate(row)


@router.get("/conditions", response_model=ConditionPage, summary="List conditions")
async def list_conditions(
    patient_id: str,
    request: Request,
    actor: Reader,
    clinical_status: ConditionClinicalStatus | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    page = await clinical.list_conditions(
        uows=_uows(request),
        actor=actor,
        patient_id=patient_id,
        clinical_status=clinical_status,
        limit=limit,
        cursor=cursor,
    )
    return _page(ConditionRead, patient_id, page)


@router.get("/conditions/{condition_id}", response_model=ConditionRead, summary="Read a condition")
async def read_condition(
    patient_id: str, condition_id: str, request: Request, actor: Reader
) -> ConditionRead:
    row = await clinical.get_condition(
        uows=_uows(request), actor=actor, patient_id=patient_id, condition_id=condition_id
    )
    return ConditionRead.model_validate(row)


@router.patch(
    "/conditions/{condition_id}", response_model=ConditionRead, summary="Update a condition"
)
async def patch_condition(
    patient_id: str, condition_id: str, body: ConditionUpdate, request: Request, actor: Writer
) -> ConditionRead:
    changes, version = _changes(body)
    row = await clinical.update_condition(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        condition_id=condition_id,
        changes=changes,
        expected_version=version,
    )
    return ConditionRead.model_validate(row)


# -- allergies ----------------------------------------------------------------------------------


@router.post("/allergies", response_model=AllergyRead, status_code=201, summary="Record an allergy")
async def create_allergy(
    patient_id: str, body: AllergyCreate, request: Request, actor: Writer
) -> AllergyRead:
    row = await clinical.record_allergy(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        values=clinical.AllergyFields(**body.model_dump()),
    )
    return AllergyRead.model_validate(row)


@router.get("/allergies", response_model=AllergyPage, summary="List allergies")
async def list_allergies(
    patient_id: str,
    request: Request,
    actor: Reader,
    clinical_status: AllergyClinicalStatus | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    page = await clinical.list_allergies(
        uows=_uows(request),
        actor=actor,
        patient_id=patient_id,
        clinical_status=clinical_status,
        limit=limit,
        cursor=cursor,
    )
    return _page(AllergyRead, patient_id, page)


@router.get("/allergies/{allergy_id}", response_model=AllergyRead, summary="Read an allergy")
async def read_allergy(
    patient_id: str, allergy_id: str, request: Request, actor: Reader
) -> AllergyRead:
    row = await clinical.get_allergy(
        uows=_uows(request), actor=actor, patient_id=patient_id, allergy_id=allergy_id
    )
    return AllergyRead.model_validate(row)


@router.patch("/allergies/{allergy_id}", response_model=AllergyRead, summary="Update an allergy")
async def patch_allergy(
    patient_id: str, allergy_id: str, body: AllergyUpdate, request: Request, actor: Writer
) -> AllergyRead:
    changes, version = _changes(body)
    row = await clinical.update_allergy(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        allergy_id=allergy_id,
        changes=changes,
        expected_version=version,
    )
    return AllergyRead.model_validate(row)


# -- the medication list ------------------------------------------------------------------------


@router.post(
    "/medications",
    response_model=MedicationRead,
    status_code=201,
    summary="Add to the medication list",
)
async def create_medication(
    patient_id: str, body: MedicationCreate, request: Request, actor: Writer
) -> MedicationRead:
    row = await medications.record_medication(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        values=medications.StatementFields(**body.model_dump()),
    )
    return MedicationRead.model_validate(row)


@router.get(
    "/medications",
    response_model=MedicationPage,
    summary="The medication list (status=active: what the patient takes now)",
)
async def list_medications(
    patient_id: str,
    request: Request,
    actor: Reader,
    status: StatementStatus | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    page = await medications.list_medications(
        uows=_uows(request),
        actor=actor,
        patient_id=patient_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return _page(MedicationRead, patient_id, page)


@router.get(
    "/medications/{medication_id}",
    response_model=MedicationRead,
    summary="Read a medication-list entry",
)
async def read_medication(
    patient_id: str, medication_id: str, request: Request, actor: Reader
) -> MedicationRead:
    row = await medications.get_medication(
        uows=_uows(request), actor=actor, patient_id=patient_id, medication_id=medication_id
    )
    return MedicationRead.model_validate(row)


@router.patch(
    "/medications/{medication_id}",
    response_model=MedicationRead,
    summary="Update a medication-list entry (e.g. stop it)",
)
async def patch_medication(
    patient_id: str, medication_id: str, body: MedicationUpdate, request: Request, actor: Writer
) -> MedicationRead:
    changes, version = _changes(body)
    row = await medications.update_medication(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        medication_id=medication_id,
        changes=changes,
        expected_version=version,
    )
    return MedicationRead.model_validate(row)


# -- prescriptions ------------------------------------------------------------------------------


@router.post(
    "/prescriptions",
    response_model=PrescriptionRead,
    status_code=201,
    summary="Write a draft prescription",
)
async def create_prescription(
    patient_id: str, body: PrescriptionCreate, request: Request, actor: Prescriber
) -> PrescriptionRead:
    row = await medications.create_prescription(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        values=medications.PrescriptionFields(**body.model_dump()),
    )
    return PrescriptionRead.model_validate(row)


@router.get("/prescriptions", response_model=PrescriptionPage, summary="List prescriptions")
async def list_prescriptions(
    patient_id: str,
    request: Request,
    actor: Reader,
    status: PrescriptionStatus | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    page = await medications.list_prescriptions(
        uows=_uows(request),
        actor=actor,
        patient_id=patient_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return _page(PrescriptionRead, patient_id, page)


@router.get(
    "/prescriptions/{prescription_id}",
    response_model=PrescriptionRead,
    summary="Read a prescription",
)
async def read_prescription(
    patient_id: str, prescription_id: str, request: Request, actor: Reader
) -> PrescriptionRead:
    row = await medications.get_prescription(
        uows=_uows(request), actor=actor, patient_id=patient_id, prescription_id=prescription_id
    )
    return PrescriptionRead.model_validate(row)


@router.patch(
    "/prescriptions/{prescription_id}",
    response_model=PrescriptionRead,
    summary="Edit a draft prescription",
)
async def patch_prescription(
    patient_id: str,
    prescription_id: str,
    body: PrescriptionUpdate,
    request: Request,
    actor: Prescriber,
) -> PrescriptionRead:
    changes, version = _changes(body)
    row = await medications.update_prescription(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        prescription_id=prescription_id,
        changes=changes,
        expected_version=version,
    )
    return PrescriptionRead.model_validate(row)


@router.post(
    "/prescriptions/{prescription_id}/issue",
    response_model=PrescriptionRead,
    summary="Sign a draft: it becomes active and enters the medication list",
)
async def issue_prescription(
    patient_id: str,
    prescription_id: str,
    request: Request,
    actor: Prescriber,
    body: PrescriptionAction | None = None,
) -> PrescriptionRead:
    # Decision support's prescribing gate, chosen by the composition root (records never
    # imports cds): an anticoagulant is checked on the record and may be refused (409).
    row = await medications.issue_prescription(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        prescription_id=prescription_id,
        expected_version=body.version if body else None,
        check=request.app.state.container.prescription_check,
    )
    return PrescriptionRead.model_validate(row)


@router.post(
    "/prescriptions/{prescription_id}/complete",
    response_model=PrescriptionRead,
    summary="Mark an active prescription completed",
)
async def complete_prescription(
    patient_id: str,
    prescription_id: str,
    request: Request,
    actor: Prescriber,
    body: PrescriptionAction | None = None,
) -> PrescriptionRead:
    row = await medications.complete_prescription(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        prescription_id=prescription_id,
        expected_version=body.version if body else None,
    )
    return PrescriptionRead.model_validate(row)


@router.post(
    "/prescriptions/{prescription_id}/cancel",
    response_model=PrescriptionRead,
    summary="Cancel a draft or active prescription",
)
async def cancel_prescription(
    patient_id: str,
    prescription_id: str,
    request: Request,
    actor: Prescriber,
    body: PrescriptionAction | None = None,
) -> PrescriptionRead:
    row = await medications.cancel_prescription(
        **_ctx(request),
        actor=actor,
        patient_id=patient_id,
        prescription_id=prescription_id,
        expected_version=body.version if body else None,
    )
    return PrescriptionRead.model_validate(row)
