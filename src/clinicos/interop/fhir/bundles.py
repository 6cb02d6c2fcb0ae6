"""Bundles: searchset results with paging links, and transaction/batch processing.

A ``transaction`` runs every entry in ONE unit of work: all entries are stored or none (the
first failing entry is reported with its index, and nothing is written). A ``batch`` runs each
entry on its own and reports each outcome. Entries are ``POST`` creates (``PUT`` updates in a
batch); references between entries use their ``fullUrl`` (``urn:uuid:…``), as Synthea writes
them, and are resolved in dependency order (Patient, then Encounter, then the rest).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from clinicos.interop.fhir.base import FhirContext, ResourceType, SearchPage
from clinicos.interop.fhir.outcome import FhirBadRequest, FhirInvalid, invalid, outcome_from_problem
from clinicos.kernel.errors import DomainError, FieldError, PayloadTooLarge, ValidationFailed

MAX_BUNDLE_ENTRIES = 5000
# Which entries a transaction creates first, so references point backwards.
_ORDER = {"Patient": 0, "Encounter": 1}


def searchset(
    ctx: FhirContext,
    resource_type: str,
    page: SearchPage,
    *,
    self_params: Sequence[tuple[str, str]],
    next_params: Sequence[tuple[str, str]] | None,
) -> dict[str, Any]:
    """A searchset Bundle: one ``match`` entry per resource, ``self`` and ``next`` links.
    ``next_params`` None: no next link (the caller decided the criteria may not go in a URL)."""
    base = ctx.base_url
    links = [{"relation": "self", "url": _url(base, resource_type, self_params)}]
    if page.next_cursor and next_params is not None:
        params = [*next_params, ("_cursor", page.next_cursor)]
        links.append({"relation": "next", "url": _url(base, resource_type, params)})
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in page.resources
    ]
    if page.next_cursor and next_params is None:
        entries.append(
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "too-costly",
                            "diagnostics": (
                                "more matches exist than _count; searches by identifying "
                                "criteria are not paged through URLs — narrow the criteria "
                                "or raise _count (at most 100)"
                            ),
                        }
                    ],
                },
                "search": {"mode": "outcome"},
            }
        )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "link": links,
        "entry": entries,
    }


def _url(base: str, resource_type: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params))
    return f"{base}/{resource_type}" + (f"?{query}" if query else "")


# -- transaction / batch ----------------------------------------------------------------------


@dataclass
class _Resolver:
    """fullUrl → (type, stored id) of the entries created so far in this bundle."""

    created: dict[str, tuple[str, str]]

    def resolve(self, reference: str, expected_type: str) -> str:
        if reference in self.created:
            kind, stored = self.created[reference]
            if kind != expected_type:
                raise invalid("reference", f"'{reference}' is a {kind}, not a {expected_type}")
            return stored
        kind, _, ref_id = reference.rstrip("/").rpartition("/")
        kind = kind.rpartition("/")[2]
        if kind == expected_type and ref_id and not reference.startswith("urn:"):
            return ref_id
        raise invalid(
            "reference",
            f"'{reference}' names no {expected_type} created earlier in this bundle "
            f"nor a stored one ('{expected_type}/<id>')",
        )


def _entries(bundle: Any) -> list[dict[str, Any]]:
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise FhirBadRequest("POST /fhir takes a Bundle of type transaction or batch")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise invalid("Bundle.type", "must be transaction or batch")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise invalid("Bundle.entry", "must be a list")
    if len(entries) > MAX_BUNDLE_ENTRIES:
        raise PayloadTooLarge(f"a bundle holds at most {MAX_BUNDLE_ENTRIES} entries")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("resource"), Mapping):
            raise invalid(f"Bundle.entry[{index}].resource", "each entry needs a resource")
        request = entry.get("request")
        if not isinstance(request, Mapping) or request.get("method") not in ("POST", "PUT"):
            raise invalid(f"Bundle.entry[{index}].request.method", "must be POST or PUT")
    return [dict(e) for e in entries]


def _located(index: int, exc: DomainError) -> DomainError:
    """The entry's error, with its index in the detail and element paths under the entry."""
    prefix = f"Bundle.entry[{index}]"
    if isinstance(exc, ValidationFailed):
        errors = tuple(
            FieldError(loc=(f"{prefix}.resource.{e.field}",), message=e.message, type=e.type)
            for e in exc.errors
        ) or (FieldError(loc=(f"{prefix}.resource",), message=exc.detail),)
        return FhirInvalid(f"{prefix}: {exc.detail}", errors=errors)
    exc.detail = f"{prefix}: {exc.detail}"
    exc.args = (exc.detail,)
    return exc


def bundle_kind(bundle: Any) -> str:
    _entries(bundle)
    return str(bundle["type"])


async def run_transaction(
    ctx: FhirContext, bundle: Any, types: Mapping[str, ResourceType]
) -> dict[str, Any]:
    """Every entry in one unit of work; the first failure rolls everything back."""
    entries = _entries(bundle)
    order = sorted(
        range(len(entries)),
        key=lambda i: _ORDER.get(str(entries[i]["resource"].get("resourceType")), 2),
    )
    resolver = _Resolver(created={})
    results: dict[int, tuple[str, str, int]] = {}
    async with ctx.uows(ctx.actor.organization_id) as uow:
        for index in order:
            entry = entries[index]
            resource = entry["resource"]
            kind = str(resource.get("resourceType"))
            if entry["request"]["method"] != "POST":
                raise invalid(
                    f"Bundle.entry[{index}].request.method",
                    "a transaction here only creates (POST); send updates as PUT one by one",
                )
            handler = types.get(kind)
            if handler is None:
                raise invalid(
                    f"Bundle.entry[{index}].resource.resourceType",
                    f"{kind} is not a resource type this server stores",
                )
            try:
                ctx.actor.require(handler.write_permission.value)
                stored_id, version = await handler.add(uow, ctx, resource, resolver)
            except DomainError as exc:
                raise _located(index, exc) from None
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str) and full_url:
                resolver.created[full_url] = (kind, stored_id)
            results[index] = (kind, stored_id, version)
        await uow.commit()
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "transaction-response",
        "entry": [_created_entry(ctx, *results[i]) for i in range(len(entries))],
    }


async def run_batch(
    ctx: FhirContext, bundle: Any, types: Mapping[str, ResourceType]
) -> dict[str, Any]:
    """Each entry on its own: one failing entry does not stop the others."""
    entries = _entries(bundle)
    responses: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        resource = entry["resource"]
        kind = str(resource.get("resourceType"))
        handler = types.get(kind)
        try:
            if handler is None:
                raise invalid(
                    f"Bundle.entry[{index}].resource.resourceType",
                    f"{kind} is not a resource type this server stores",
                )
            if entry["request"]["method"] == "POST":
                ctx.actor.require(handler.write_permission.value)
                stored = await handler.create(ctx, resource)
                responses.append(
                    _created_entry(ctx, kind, stored["id"], int(stored["meta"]["versionId"]))
                )
            else:
                url = str(entry["request"].get("url", ""))
                target = url.rstrip("/").rpartition("/")[2]
                if not url.startswith(f"{kind}/") or not target:
                    raise invalid(f"Bundle.entry[{index}].request.url", f"must be {kind}/<id>")
                ctx.actor.require(handler.write_permission.value)
                stored = await handler.update(ctx, target, resource, None)
                responses.append(
                    {
                        "resource": stored,
                        "response": {
                            "status": "200 OK",
                            "etag": f'W/"{stored["meta"]["versionId"]}"',
                        },
                    }
                )
        except DomainError as exc:
            located = _located(index, exc)
            body = {
                "status": located.status,
                "code": located.code,
                "title": located.title,
                "detail": located.detail,
            }
            if isinstance(located, FhirInvalid):
                body["errors"] = [
                    {"field": e.field, "loc": list(e.loc), "message": e.message}
                    for e in located.errors
                ]
            responses.append(
                {"response": {"status": str(located.status), "outcome": outcome_from_problem(body)}}
            )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "batch-response",
        "entry": responses,
    }


def _created_entry(ctx: FhirContext, kind: str, stored_id: str, version: int) -> dict[str, Any]:
    return {
        "response": {
            "status": "201 Created",
            "location": f"{kind}/{stored_id}/_history/{version}",
            "etag": f'W/"{version}"',
        }
    }
