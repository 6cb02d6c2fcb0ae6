"""The server's ``CapabilityStatement`` (``GET /fhir/metadata``), built from the resource
types the facade registers, so it never claims more than the code does."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clinicos.interop.fhir.base import ResourceType

FHIR_VERSION = "4.0.1"
_PARAMETER_TYPES = {
    "_id": "token",
    "patient": "reference",
    "subject": "reference",
    "code": "token",
    "date": "date",
    "status": "token",
    "clinical-status": "token",
    "category": "token",
    "identifier": "token",
    "name": "string",
    "family": "string",
    "phone": "token",
    "email": "token",
    "telecom": "token",
    "active": "token",
}


def capability_statement(
    types: Mapping[str, ResourceType], *, base_url: str, software_version: str
) -> dict[str, Any]:
    resources = []
    for name, handler in sorted(types.items()):
        params = ["_id", *handler.search_parameters]
        resources.append(
            {
                "type": name,
                "interaction": [{"code": code} for code in handler.interactions],
                "versioning": "versioned-update",
                "readHistory": False,
                "updateCreate": False,
                "conditionalCreate": False,
                "conditionalUpdate": False,
                "conditionalDelete": "not-supported",
                "searchParam": [
                    {"name": p, "type": _PARAMETER_TYPES.get(p, "string")} for p in params
                ],
                **(
                    {
                        "operation": [
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                            }
                        ]
                    }
                    if name == "Patient"
                    else {}
                ),
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": "clinicos", "version": software_version},
        "implementation": {"description": "clinicos FHIR R4 facade", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "description": "Bearer access tokens from POST /api/v1/auth/login; "
                    "every request acts in the token's organization.",
                },
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
