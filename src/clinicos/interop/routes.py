"""The FHIR R4 facade's HTTP edge under ``/fhir``: ``metadata``; read, search (GET and
``POST _search``), create and update per resource type; ``Patient/{id}/$everything``; and
transaction/batch bundles at the base. Bodies and responses are ``application/fhir+json``;
every error is an ``OperationOutcome`` (the problem renderer registered for ``/fhir``)."""

# No `from __future__ import annotations`: the per-type route functions are closures whose
# `Depends(...)` annotations FastAPI must evaluate where they are defined.
import json
import re
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from clinicos.identity import Permission, public, require
from clinicos.interop.fhir.base import FhirContext, ResourceType, SearchPage, SearchRequest
from clinicos.interop.fhir.bundles import bundle_kind, run_batch, run_transaction, searchset
from clinicos.interop.fhir.capability import capability_statement
from clinicos.interop.fhir.outcome import FHIR_JSON, FhirBadRequest, invalid, outcome_from_problem
from clinicos.interop.fhir.registry import RESOURCE_TYPES
from clinicos.interop.fhir.search import parse_search
from clinicos.kernel.actor import Actor
from clinicos.platform.http.problems import register_problem_renderer

router = APIRouter(prefix="/fhir", tags=["fhir"])

_ACCEPTED_BODY_TYPES = ("application/fhir+json", "application/json")
_ETAG = re.compile(r'^(?:W/)?"(\d{1,9})"$')
EVERYTHING_LIMIT = 1000


def fhir_response(
    content: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    # "replace": a lone surrogate a client sent (JSON's "\ud800") that an error message names,
    # such as an unknown resourceType, is not text any response can carry; it becomes "?".
    body = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
    return Response(
        content=body,
        status_code=status,
        media_type=FHIR_JSON,
        headers=headers,
    )


def render_outcome(body: dict[str, Any], headers: dict[str, str] | None) -> Response:
    return fhir_response(outcome_from_problem(body), status=int(body["status"]), headers=headers)


def install(app: FastAPI) -> None:
    """Mount the facade and render its errors as OperationOutcome."""
    register_problem_renderer(app, "/fhir", render_outcome)
    app.include_router(router)


def _software_version() -> str:
    try:
        return version("clinicos")
    except PackageNotFoundError:  # running from a source tree without metadata
        return "0"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _context(request: Request, actor: Actor) -> FhirContext:
    container = request.app.state.container
    return FhirContext(
        uows=container.uow,
        phi=container.phi,
        actor=actor,
        base_url=_base(request),
        prescription_check=container.prescription_check,
    )


async def _body(request: Request) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _ACCEPTED_BODY_TYPES:
        raise StarletteHTTPException(415, "send the resource as application/fhir+json")
    raw = await request.body()
    try:
        return json.loads(raw, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise FhirBadRequest(f"the body is not valid JSON at position {exc.pos}") from None
    except UnicodeDecodeError:
        raise FhirBadRequest("the body is not UTF-8") from None
    except RecursionError:  # the parser recurses per nesting level
        raise FhirBadRequest("the body nests arrays or objects too deeply") from None
    except ValueError:  # a number past Python's int-from-text limit (4,300 digits)
        raise FhirBadRequest("the body holds a number with too many digits") from None


def _not_json(constant: str) -> Any:
    """``NaN`` and ``±Infinity`` are Python's extensions, not JSON (RFC 8259 §6)."""
    raise FhirBadRequest(f"the body is not valid JSON: {constant} is not a JSON number")


def _version_of(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    match = _ETAG.match(header.strip())
    if match is None:
        raise FhirBadRequest('If-Match must be an ETag such as W/"3"')
    return int(match.group(1))


def _stored_headers(ctx: FhirContext, resource: dict[str, Any]) -> dict[str, str]:
    version_id = resource["meta"]["versionId"]
    location = f"{ctx.base_url}/{resource['resourceType']}/{resource['id']}"
    return {"ETag": f'W/"{version_id}"', "Location": f"{location}/_history/{version_id}"}


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(request: Request, _: Annotated[None, Depends(public)]) -> Response:
    return fhir_response(
        capability_statement(
            RESOURCE_TYPES, base_url=_base(request), software_version=_software_version()
        )
    )


# The handlers read the raw body (FHIR JSON, or a search form); the document says what they
# expect, so clients and contract tests send it.
_SEARCH_FORM: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
    }
}


def _resource_body(resource_type: str) -> dict[str, object]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/fhir+json": {
                    "schema": {
                        "type": "object",
                        "required": ["resourceType"],
                        "properties": {"resourceType": {"const": resource_type}},
                    }
                }
            },
        }
    }


@router.post(
    "",
    summary="Process a transaction or batch Bundle",
    openapi_extra=_resource_body("Bundle"),
)
async def process_bundle(
    request: Request, actor: Annotated[Actor, Depends(require(Permission.records_import))]
) -> Response:
    bundle = await _body(request)
    ctx = _context(request, actor)
    if bundle_kind(bundle) == "transaction":
        return fhir_response(await run_transaction(ctx, bundle, RESOURCE_TYPES))
    return fhir_response(await run_batch(ctx, bundle, RESOURCE_TYPES))


@router.get("/Patient/{patient_id}/$everything", summary="Everything held about one patient")
async def everything(
    patient_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.clinical_read))],
) -> Response:
    actor.require(Permission.patient_read.value)
    ctx = _context(request, actor)
    patient = await RESOURCE_TYPES["Patient"].read(ctx, patient_id)
    resources = [patient]
    for name, handler in sorted(RESOURCE_TYPES.items()):
        if name == "Patient" or not actor.can(handler.read_permission.value):
            continue
        cursor: str | None = None
        while len(resources) < EVERYTHING_LIMIT:
            page = await handler.search(
                ctx, SearchRequest(patient_id=patient_id, count=100, cursor=cursor)
            )
            resources += page.resources
            cursor = page.next_cursor
            if cursor is None:
                break
    bundle = searchset(
        ctx,
        f"Patient/{patient_id}/$everything",
        SearchPage(resources=resources[:EVERYTHING_LIMIT], next_cursor=None),
        self_params=[],
        next_params=None,
    )
    return fhir_response(bundle)


def _add_type_routes(handler: ResourceType) -> None:
    name = handler.name
    read_dependency = require(handler.read_permission)
    write_dependency = require(handler.write_permission)

    async def search_get(
        request: Request, actor: Annotated[Actor, Depends(read_dependency)]
    ) -> Response:
        pairs = list(request.query_params.multi_items())
        return await _search(request, actor, pairs, in_url=True)

    async def search_post(
        request: Request, actor: Annotated[Actor, Depends(read_dependency)]
    ) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise StarletteHTTPException(415, "send the criteria as a form body")
        try:
            pairs = parse_qsl(
                (await request.body()).decode(), keep_blank_values=False, strict_parsing=False
            )
        except UnicodeDecodeError:
            raise FhirBadRequest("the body is not UTF-8") from None
        return await _search(request, actor, pairs, in_url=False)

    async def _search(
        request: Request, actor: Actor, pairs: list[tuple[str, str]], *, in_url: bool
    ) -> Response:
        search = parse_search(handler, pairs, in_url=in_url)
        ctx = _context(request, actor)
        page = await handler.search(ctx, search)
        safe = [(k, v) for k, v in pairs if k not in handler.phi_parameters and k != "_cursor"]
        has_phi = any(k in handler.phi_parameters for k, _ in pairs)
        return fhir_response(
            searchset(
                ctx,
                name,
                page,
                self_params=[] if has_phi else safe,
                next_params=None if has_phi else safe,
            )
        )

    async def read(
        resource_id: str, request: Request, actor: Annotated[Actor, Depends(read_dependency)]
    ) -> Response:
        ctx = _context(request, actor)
        resource = await handler.read(ctx, resource_id)
        return fhir_response(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})

    async def create(
        request: Request, actor: Annotated[Actor, Depends(write_dependency)]
    ) -> Response:
        body = await _body(request)
        ctx = _context(request, actor)
        resource = await handler.create(ctx, body)
        return fhir_response(resource, status=201, headers=_stored_headers(ctx, resource))

    async def update(
        resource_id: str, request: Request, actor: Annotated[Actor, Depends(write_dependency)]
    ) -> Response:
        body = await _body(request)
        if isinstance(body, dict) and body.get("id") != resource_id:
            raise invalid(f"{name}.id", "must equal the id in the URL")
        ctx = _context(request, actor)
        resource = await handler.update(ctx, resource_id, body, _version_of(request))
        return fhir_response(resource, headers=_stored_headers(ctx, resource))

    routes: list[tuple[str, str, Callable[..., Awaitable[Response]], str]] = [
        ("GET", f"/{name}", search_get, f"Search {name}"),
        ("POST", f"/{name}/_search", search_post, f"Search {name} (criteria in the body)"),
        ("GET", f"/{name}/{{resource_id}}", read, f"Read a {name}"),
    ]
    if "create" in handler.interactions:
        routes.append(("POST", f"/{name}", create, f"Create a {name}"))
    if "update" in handler.interactions:
        routes.append(("PUT", f"/{name}/{{resource_id}}", update, f"Update a {name}"))
    for method, path, endpoint, summary in routes:
        endpoint.__name__ = f"{name.lower()}_{endpoint.__name__}"
        body = _SEARCH_FORM if path.endswith("/_search") else _resource_body(name)
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            summary=summary,
            response_class=Response,
            openapi_extra=body if method in ("POST", "PUT") else None,
        )


for _handler in RESOURCE_TYPES.values():
    _add_type_routes(_handler)
