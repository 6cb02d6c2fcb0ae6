"""An external FHIR client (fhirpy, over a real socket) creates, searches and reads patients and
observations — what an integrating system does with clinicos."""

from __future__ import annotations

from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome as FhirpyOutcome
from httpx import AsyncClient

from clinicos.bootstrap import Container
from clinicos.config import Settings
from tests.support.live_server import live_server
from tests.support.records_fixtures import clinic

MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
LOINC = "http://loinc.org"


async def test_fhirpy_creates_searches_and_reads_patients_and_observations(
    container: Container, client: AsyncClient, settings: Settings
) -> None:
    staff = await clinic(container, client, "fhirpy", "clinician")
    token = staff["clinician"].headers["Authorization"]

    with live_server(settings) as base:
        fhir = AsyncFHIRClient(f"{base}/fhir", authorization=token)
        patient = fhir.resource(
            "Patient",
            identifier=[{"type": MR, "value": "PY-1"}],
            name=[{"family": "Quispe", "given": ["Juana"]}],
            gender="female",
            birthDate="1951-02-03",
            active=True,
        )
        await patient.save()
        for when, value in (("2026-11-01T08:00:00Z", 1.1), ("2026-11-20T08:00:00Z", 1.4)):
            observation = fhir.resource(
                "Observation",
                status="final",
                category=[
                    {
                        "coding": [
                            {
                                "system": (
                                    "http://terminology.hl7.org/CodeSystem/observation-category"
                                ),
                                "code": "laboratory",
                            }
                        ]
                    }
                ],
                code={"coding": [{"system": LOINC, "code": "2160-0"}]},
                subject=patient.to_reference(),
                effectiveDateTime=when,
                valueQuantity={"value": value, "unit": "mg/dL", "code": "mg/dL"},
            )
            await observation.save()

        found_patients = await fhir.resources("Patient").search(_id=patient.id).fetch()
        latest = (
            await fhir.resources("Observation")
            .search(patient=patient.id, code=f"{LOINC}|2160-0")
            .sort("-date")
            .limit(1)
            .fetch()
        )
        every_result = (
            await fhir.resources("Observation").search(subject=f"Patient/{patient.id}").fetch_all()
        )
        read_back = await fhir.reference("Patient", patient.id).to_resource()
        try:
            await fhir.resources("Patient").search(identifier="PY-1").fetch()
            phi_in_url_refused = False
        except FhirpyOutcome:
            phi_in_url_refused = True

    assert [p.id for p in found_patients] == [patient.id]
    assert [float(o["valueQuantity"]["value"]) for o in latest] == [1.4]
    assert len(every_result) == 2
    assert read_back["name"][0]["family"] == "Quispe"
    assert read_back["birthDate"] == "1951-02-03"
    assert phi_in_url_refused
