"""Bulk FHIR import: Synthea-shaped bundles (one file per patient, or one big file) stored one
patient per transaction, with progress reporting and a report of what failed.

A patient's resources are stored together or not at all (one transaction each), so an import
interrupted or partly invalid leaves whole patients, never half of one; re-running it reports
the already-imported patients as failed with ``patient_mrn_taken`` and stores the rest.
Resource types this server does not store (Synthea's Organization, Practitioner, Claim …) are
skipped and counted; references to them are ignored by the mappings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinicos.interop.fhir.base import FhirContext, ResourceType
from clinicos.interop.fhir.bundles import run_transaction
from clinicos.kernel.errors import DomainError

_PATIENT_FIELDS = ("subject", "patient")


@dataclass
class ImportReport:
    patients: int = 0
    resources: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (source, code, detail)

    @property
    def ok(self) -> bool:
        return not self.failures


def _patient_of(resource: Mapping[str, Any]) -> str | None:
    for name in _PATIENT_FIELDS:
        value = resource.get(name)
        if isinstance(value, Mapping) and isinstance(value.get("reference"), str):
            return str(value["reference"])
    return None


def split_by_patient(
    bundle: Mapping[str, Any], types: Mapping[str, ResourceType], report: ImportReport
) -> Iterator[list[dict[str, Any]]]:
    """The bundle's entries grouped per patient (Patient entry first), unsupported types
    dropped and counted in ``report.skipped``. Entries whose patient is not in the bundle form
    one last group (they may reference stored patients as ``Patient/<id>``)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    orphans: list[dict[str, Any]] = []
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, Mapping)]
    for entry in entries:
        resource = entry.get("resource")
        if isinstance(resource, Mapping) and resource.get("resourceType") == "Patient":
            groups[str(entry.get("fullUrl") or id(entry))] = [_as_post(entry)]
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            continue
        kind = str(resource.get("resourceType"))
        if kind == "Patient":
            continue
        if kind not in types:
            report.skipped[kind] = report.skipped.get(kind, 0) + 1
            continue
        reference = _patient_of(resource)
        if reference is not None and reference in groups:
            groups[reference].append(_as_post(entry))
        else:
            orphans.append(_as_post(entry))
    yield from groups.values()
    if orphans:
        yield orphans


def _as_post(entry: Mapping[str, Any]) -> dict[str, Any]:
    resource = entry["resource"]
    return {
        **({"fullUrl": entry["fullUrl"]} if entry.get("fullUrl") else {}),
        "resource": resource,
        "request": {"method": "POST", "url": resource.get("resourceType")},
    }


def read_bundles(paths: Iterable[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(source name, bundle)`` for each ``.json`` file (directories are walked, sorted)."""
    for path in paths:
        files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
        for file in files:
            with file.open(encoding="utf-8") as handle:
                yield file.name, json.load(handle)


def count_patients(bundle: Mapping[str, Any]) -> int:
    return sum(
        1
        for e in bundle.get("entry") or []
        if isinstance(e, Mapping)
        and isinstance(e.get("resource"), Mapping)
        and e["resource"].get("resourceType") == "Patient"
    )


async def import_bundle(
    ctx: FhirContext,
    source: str,
    bundle: Mapping[str, Any],
    types: Mapping[str, ResourceType],
    report: ImportReport,
    on_patient: Callable[[], None] | None = None,
) -> None:
    """Store one bundle, one patient per transaction, adding to ``report``."""
    if bundle.get("resourceType") != "Bundle":
        report.failures.append((source, "fhir_bad_request", "not a FHIR Bundle"))
        return
    for group in split_by_patient(bundle, types, report):
        has_patient = group[0]["resource"].get("resourceType") == "Patient"
        try:
            await run_transaction(
                ctx, {"resourceType": "Bundle", "type": "transaction", "entry": group}, types
            )
        except DomainError as exc:
            label = f"{source} patient #{report.patients + len(report.failures) + 1}"
            report.failures.append((label, exc.code, exc.detail))
        else:
            report.patients += 1 if has_patient else 0
            report.resources += len(group)
        if on_patient is not None and has_patient:
            on_patient()
