"""Helpers for the CDS Hooks tests: client keys and signed tokens (made with `cryptography`),
client registration through the real use case, and CDS Hooks requests built from the worked
cases of shared/clinical/doac-examples.json (the case's facts as FHIR prefetch)."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from httpx import AsyncClient, Response

from clinicos.bootstrap import Container
from clinicos.cds.hooks.clients import add_client, parse_jwks

BASE = "http://testserver"
DISCOVERY = "/cds-services"
SIGN = "/cds-services/doac-safety"
SELECT = "/cds-services/doac-safety-select"
SIGN_FEEDBACK = "/cds-services/doac-safety/feedback"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
INDICATION = "urn:clinicos:cs:anticoagulation-indication"
RXCUI = {
    "apixaban": "1364430",
    "rivaroxaban": "1114195",
    "dabigatran": "1546356",
    "edoxaban": "1599538",
    "warfarin": "11289",
}
TIMES_PER_DAY = {"QD": 1, "BID": 2, "TID": 3, "QID": 4}
PATIENT_ID = "pat-123"
PRACTITIONER = "Practitioner/dr-77"


@dataclass(frozen=True)
class ClientKey:
    """A client's signing key, its algorithm and the public JWK it registers."""

    private: Any
    algorithm: str
    kid: str
    public_jwk: dict[str, Any]


# Generating a 2048-bit RSA key costs 50-200 ms of CPU, and ~100 tests each want one or two.
# Each call takes the next key of a small per-process ring, generated on first use: calls in a row
# (the most any test makes is 3) get distinct keys, and a key seen again later belongs to
# another test, whose database has since been emptied.
_RSA_RING_SIZE = 8
_rsa_ring: list[rsa.RSAPrivateKey] = []
_rsa_calls = itertools.count()


def _next_rsa_private_key() -> rsa.RSAPrivateKey:
    slot = next(_rsa_calls) % _RSA_RING_SIZE
    if slot == len(_rsa_ring):
        _rsa_ring.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _rsa_ring[slot]


def rsa_key(kid: str = "rsa-1", algorithm: str = "RS256") -> ClientKey:
    private = _next_rsa_private_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return ClientKey(private, algorithm, kid, jwk | {"kid": kid, "alg": algorithm, "use": "sig"})


def ec_key(kid: str = "ec-1") -> ClientKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    return ClientKey(private, "ES256", kid, jwk | {"kid": kid, "alg": "ES256"})


def ed25519_key(kid: str = "ed-1") -> ClientKey:
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
    return ClientKey(private, "EdDSA", kid, jwk | {"kid": kid})


def jwks_of(*keys: ClientKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk for key in keys]}


async def register(
    container: Container, organization_id: str, issuer: str, *keys: ClientKey
) -> str:
    """Register a CDS client through the use case the CLI calls; its id."""
    view = await add_client(
        uows=container.uow,
        organization_id=organization_id,
        issuer=issuer,
        jwks=parse_jwks(json.dumps(jwks_of(*keys))),
        reserved_issuer=container.settings.identity.jwt_issuer,
    )
    return view.client_id


def client_token(
    key: ClientKey,
    *,
    issuer: str,
    audience: str | list[str] = BASE + SIGN,
    now: datetime,
    lifetime: timedelta = timedelta(minutes=5),
    jti: str | None = None,
    **claims: Any,
) -> str:
    payload = {
        "iss": issuer,
        "aud": audience,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": jti or str(uuid.uuid4()),
        "sub": "ehr-client",
    } | claims
    return jwt.encode(payload, key.private, algorithm=key.algorithm, headers={"kid": key.kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- FHIR built from a worked case ---------------------------------------------------------------


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A searchset Bundle, or null when there is nothing (CDS Hooks: "no data" is null)."""
    if not resources:
        return None
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }


def observation(
    code: str, value: Any, unit: str, measured: date | None, obs_id: str
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "valueQuantity": {"value": value, "unit": unit},
    }
    if measured is not None:
        resource["effectiveDateTime"] = measured.isoformat()
    return resource


def medication_request(
    drug: str | None,
    *,
    dose_mg: Any,
    frequency: str,
    indication: str,
    request_id: str = "draft-1",
    status: str = "draft",
    text: str | None = None,
) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if drug is not None:
        concept["coding"] = [{"system": RXNORM, "code": RXCUI[drug], "display": drug}]
    if text is not None:
        concept["text"] = text
    return {
        "resourceType": "MedicationRequest",
        "id": request_id,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": concept,
        "reasonCode": [{"coding": [{"system": INDICATION, "code": indication}]}],
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "frequency": TIMES_PER_DAY[frequency],
                        "period": 1,
                        "periodUnit": "d",
                    }
                },
                "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg"}}],
            }
        ],
    }


def _conditions(patient: dict[str, Any]) -> list[dict[str, Any]]:
    codes = []
    if patient.get("active_bleeding"):
        codes.append(("http://snomed.info/sct", "131148009"))
    if patient.get("mechanical_valve"):
        codes.append(("http://hl7.org/fhir/sid/icd-10", "Z95.2"))
    if patient.get("pregnant"):
        codes.append(("http://snomed.info/sct", "77386006"))
    return [
        {
            "resourceType": "Condition",
            "id": f"cond-{index}",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": f"Patient/{PATIENT_ID}"},
        }
        for index, (system, code) in enumerate(codes)
    ]


def prefetch_for(patient: dict[str, Any], today: date) -> dict[str, Any]:
    """A case's patient as the five prefetch keys the discovery document asks for."""

    def measured(days_ago: int | None) -> date | None:
        return None if days_ago is None else today - timedelta(days=days_ago)

    age = patient["age_years"]
    weights = []
    if patient.get("weight_kg") is not None:
        when = measured(patient.get("weight_measured_days_ago"))
        weights.append(observation("29463-7", patient["weight_kg"], "kg", when, "w-1"))
    creatinines = []
    if patient.get("serum_creatinine_mg_dl") is not None:
        when = measured(patient.get("creatinine_measured_days_ago"))
        creatinines.append(
            observation("2160-0", patient["serum_creatinine_mg_dl"], "mg/dL", when, "c-1")
        )
    medications = [
        {
            "resourceType": "MedicationRequest",
            "id": f"active-{index}",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT_ID}"},
            "medicationCodeableConcept": {"text": name},
        }
        for index, name in enumerate(patient.get("other_medications", []))
    ]
    return {
        "patient": {
            "resourceType": "Patient",
            "id": PATIENT_ID,
            "gender": patient["sex"],
            "birthDate": today.replace(year=today.year - age).isoformat(),
        },
        "weight": _bundle(weights),
        "creatinine": _bundle(creatinines),
        "medications": _bundle(medications),
        "conditions": _bundle(_conditions(patient)),
    }


def hook_request(
    draft: dict[str, Any] | list[dict[str, Any]],
    prefetch: dict[str, Any] | None,
    *,
    hook: str = "order-sign",
    **context: Any,
) -> dict[str, Any]:
    drafts = draft if isinstance(draft, list) else [draft]
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": PRACTITIONER,
            "patientId": PATIENT_ID,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": d} for d in drafts],
            },
        }
        | context,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def case_request(case: dict[str, Any], today: date) -> dict[str, Any]:
    order = case["order"]
    draft = medication_request(
        order["drug"],
        dose_mg=order["dose_mg"],
        frequency=order["frequency"],
        indication=order["indication"],
    )
    return hook_request(draft, prefetch_for(case["patient"], today))


async def post_hook(
    client: AsyncClient,
    headers: dict[str, str],
    body: Any,
    path: str = SIGN,
    language: str | None = None,
) -> Response:
    if language is not None:
        headers = headers | {"Accept-Language": language}
    return await client.post(path, json=body, headers=headers)


def reasons_of(cards: list[dict[str, Any]]) -> set[str]:
    return {card["extension"]["clinicos.reason"] for card in cards}
