"""The CDS Hooks 2.0 HTTP edge: discovery, the DOAC safety services (order-sign and
order-select) and their feedback endpoints, and who may call them.

CDS Hooks gives each service exactly one hook, so the DOAC check is published twice:
``doac-safety`` (order-sign) and ``doac-safety-select`` (order-select), same engine and cards.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request, Response

from clinicos.cds.engine import load_rule_pack
from clinicos.cds.hooks.auth import (
    InvalidClientToken,
    authenticate_client,
    client_actor,
    unverified_issuer,
)
from clinicos.cds.hooks.mapping import (
    CONDITIONS_KEY,
    CREATININE_KEY,
    CREATININE_MASS_LOINC,
    CREATININE_MOLES_LOINC,
    LOINC,
    MEDICATIONS_KEY,
    PATIENT_KEY,
    WEIGHT_KEY,
    WEIGHT_LOINC,
    Terminology,
)
from clinicos.cds.hooks.schemas import (
    ORDER_SELECT,
    ORDER_SIGN,
    FeedbackRequest,
    HookRequest,
    parse_body,
)
from clinicos.cds.hooks.services import HookService, record_feedback, run_order_hook
from clinicos.cds.overrides import OverridePolicy, override_reasons
from clinicos.cds.schemas import preferred_language
from clinicos.identity import Permission, public, require
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import AuthenticationRequired
from clinicos.platform.http.problems import request_id_of
from clinicos.platform.http.ratelimit import enforce
from clinicos.platform.observability.logging import get_logger

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])
log = get_logger("clinicos.cds.hooks")

SIGN = HookService(id="doac-safety", hook=ORDER_SIGN)
SELECT = HookService(id="doac-safety-select", hook=ORDER_SELECT)
_PATIENT = "{{context.patientId}}"
PREFETCH = {
    PATIENT_KEY: f"Patient/{_PATIENT}",
    WEIGHT_KEY: (
        f"Observation?patient={_PATIENT}&code={LOINC}|{WEIGHT_LOINC}&_sort=-date&_count=1"
    ),
    CREATININE_KEY: (
        f"Observation?patient={_PATIENT}&code={LOINC}|{CREATININE_MASS_LOINC},"
        f"{LOINC}|{CREATININE_MOLES_LOINC}&_sort=-date&_count=1"
    ),
    MEDICATIONS_KEY: f"MedicationRequest?patient={_PATIENT}&status=active",
    CONDITIONS_KEY: f"Condition?patient={_PATIENT}&clinical-status=active",
}
_DESCRIPTION = (
    "Checks draft anticoagulant MedicationRequests (apixaban, rivaroxaban, dabigatran, "
    "edoxaban, warfarin) against US labels, Beers 2023 and local policy: renal function "
    "(Cockcroft-Gault), dose and frequency for the indication, interactions, contraindications "
    "and data freshness. One card per reason; no card means the order passed."
)
_USAGE = (
    "Authenticate with a JWT from a registered CDS client (clinicos cds clients add). "
    "Send the prefetch: missing weight or creatinine gives an ATTEST card."
)


@dataclass(frozen=True)
class Caller:
    """Who called: a clinicos user (``client_id`` None) or a registered CDS client."""

    actor: Actor
    client_id: str | None


@cache
def _terminology() -> Terminology:
    """RxNorm codes and generic names from the packaged pack: they name drugs, not policy, so
    they do not vary with an organization's active pack or local overlay."""
    return Terminology.from_pack(load_rule_pack())


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("a bearer token is required (CDS client JWT or access token)")
    return token.strip()


def _audiences(request: Request) -> set[str]:
    """The URLs a client's ``aud`` may name: this endpoint as reached and as configured
    (``CLINICOS_IDENTITY__PUBLIC_BASE_URL``); for feedback also its service's URL."""
    settings = request.app.state.container.settings
    path = request.url.path
    paths = {path, path.removesuffix("/feedback")}
    bases = {str(request.base_url).rstrip("/"), settings.identity.public_base_url.rstrip("/")}
    return {base + p for base in bases for p in paths}


_user_caller = require(Permission.cds_evaluate)


async def hook_caller(request: Request, response: Response) -> Caller:
    """A clinicos access token (``iss`` is ours) goes through ``require(cds_evaluate)``;
    any other bearer token must be a registered CDS client's JWT (auth.py)."""
    container = request.app.state.container
    token = _bearer(request)
    if unverified_issuer(token) == container.settings.identity.jwt_issuer:
        return Caller(actor=await _user_caller(request, response), client_id=None)
    try:
        identity = await authenticate_client(
            uows=container.uow,
            token=token,
            audiences=_audiences(request),
            now=container.clock.now(),
        )
    except InvalidClientToken as exc:
        # Logged, not audited: an audit row per unauthenticated call would let anyone grow a
        # tenant's chain. The detail names the failed check, never a claim's value.
        log.warning("cds_hooks_client_token_refused", check=exc.detail)
        raise
    actor = client_actor(identity, request_id=request_id_of(request.scope))
    request.state.actor = actor
    await enforce(request, response, "write", f"cds-client:{identity.client_id}")
    return Caller(actor=actor, client_id=identity.client_id)


# The route-permission check (tests/architecture) reads require()'s marker off the dependency:
# a client token is checked here instead, for the same permission.
hook_caller.__dict__.update(_user_caller.__dict__)


@router.get("", summary="CDS Hooks discovery: the services this server offers")
async def discovery(_: Annotated[None, Depends(public)]) -> dict[str, Any]:
    return {
        "services": [
            {
                "hook": service.hook,
                "id": service.id,
                "title": title,
                "description": _DESCRIPTION,
                "prefetch": PREFETCH,
                "usageRequirements": _USAGE,
            }
            for service, title in (
                (SIGN, "DOAC safety check (order sign)"),
                (SELECT, "DOAC safety check (order select)"),
            )
        ]
    }


async def _cards(
    service: HookService,
    body: Any,
    request: Request,
    caller: Caller,
    accept_language: str | None,
) -> dict[str, Any]:
    container = request.app.state.container
    settings = container.settings
    cards = await run_order_hook(
        uows=container.uow,
        actor=caller.actor,
        client_id=caller.client_id,
        service=service,
        request=parse_body(HookRequest, body, what="CDS Hooks request"),
        terminology=_terminology(),
        override_reasons=override_reasons(settings.cds.override_reason_codes),
        language=preferred_language(accept_language),
        now=container.clock.now(),
        production=settings.env.value == "production",
    )
    return {"cards": cards}


async def _feedback(
    service: HookService, body: Any, request: Request, caller: Caller
) -> dict[str, Any]:
    container = request.app.state.container
    settings = container.settings
    results = await record_feedback(
        uows=container.uow,
        actor=caller.actor,
        client_id=caller.client_id,
        service=service,
        request=parse_body(FeedbackRequest, body, what="CDS Hooks feedback"),
        policy=OverridePolicy(
            reason_codes=tuple(settings.cds.override_reason_codes),
            block_needs_cosign=settings.cds.block_override_needs_cosign,
        ),
        phi=container.phi,
    )
    return {
        "feedback": [
            {
                "card": r.card,
                "outcome": r.outcome,
                "overrideId": r.override_id,
                "overrideStatus": r.override_status,
            }
            for r in results
        ]
    }


Json = Annotated[Any, Body()]
Language = Annotated[str | None, Header(max_length=500)]


@router.post("/doac-safety", summary="DOAC safety check for order-sign")
async def doac_safety(
    request: Request,
    caller: Annotated[Caller, Depends(hook_caller)],
    body: Json = None,
    accept_language: Language = None,
) -> dict[str, Any]:
    return await _cards(SIGN, body, request, caller, accept_language)


@router.post("/doac-safety-select", summary="DOAC safety check for order-select")
async def doac_safety_select(
    request: Request,
    caller: Annotated[Caller, Depends(hook_caller)],
    body: Json = None,
    accept_language: Language = None,
) -> dict[str, Any]:
    return await _cards(SELECT, body, request, caller, accept_language)


@router.post("/doac-safety/feedback", summary="Feedback on doac-safety cards")
async def doac_safety_feedback(
    request: Request, caller: Annotated[Caller, Depends(hook_caller)], body: Json = None
) -> dict[str, Any]:
    return await _feedback(SIGN, body, request, caller)


@router.post("/doac-safety-select/feedback", summary="Feedback on doac-safety-select cards")
async def doac_safety_select_feedback(
    request: Request, caller: Annotated[Caller, Depends(hook_caller)], body: Json = None
) -> dict[str, Any]:
    return await _feedback(SELECT, body, request, caller)
