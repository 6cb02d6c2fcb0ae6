"""``clinicos fhir …``: generate synthetic Synthea-shaped bundles and import FHIR bundles.

Kept out of cli.py (already long); shares its settings loader and use-case runner through the
``clinicos.cli`` module at call time, so tests that patch ``clinicos.cli._settings`` patch these
commands too."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from clinicos.bootstrap import Container

fhir_app = typer.Typer(
    help="FHIR bundles: generate synthetic patients, import", no_args_is_help=True
)


@fhir_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option(help="file to write (one transaction Bundle)")],
    patients: Annotated[int, typer.Option(min=1, max=100_000, help="how many patients")] = 100,
    seed: Annotated[int, typer.Option(help="same seed → same patients")] = 1,
    as_of: Annotated[
        str | None, typer.Option(help="reference date YYYY-MM-DD (default today, UTC)")
    ] = None,
) -> None:
    """Write invented patients (Synthea-shaped: Patient, Encounter, Observation, Condition,
    MedicationRequest) as one FHIR transaction Bundle."""
    from clinicos.interop.synthetic import combined_bundle, synthetic_bundles

    reference = _date(as_of)
    bundles = list(synthetic_bundles(seed, patients, as_of=reference))
    bundle = combined_bundle(bundles)
    out.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    typer.echo(f"wrote {patients} patients ({len(bundle['entry'])} resources) to {out}")


@fhir_app.command("import")
def import_files(
    paths: Annotated[list[Path], typer.Argument(help="Bundle files or directories of them")],
    organization: Annotated[str, typer.Option(help="organization slug")],
    as_user: Annotated[
        str, typer.Option("--as", help="email of the member the import is recorded as")
    ],
) -> None:
    """Import FHIR Bundles, one patient per transaction, with a progress bar. Types this
    server does not store are skipped and counted; failed patients are listed (exit 1)."""
    from clinicos import cli as root

    for path in paths:
        if not path.exists():
            raise root._fail(f"{path}: no such file or directory", code=2)

    async def _import(c: Container) -> Any:
        return await import_as_member(c, paths, organization=organization, email=as_user)

    report = root._run_use_case(_import)
    typer.echo(
        f"imported {report.patients} patients ({report.resources} resources); "
        f"failed {len(report.failures)}"
    )
    for kind, count in sorted(report.skipped.items()):
        typer.echo(f"  skipped {count} {kind} (not stored by this server)")
    for source, code, detail in report.failures:
        typer.echo(f"  FAILED {source}: {code}: {detail}", err=True)
    if not report.ok:
        raise typer.Exit(1)


async def import_as_member(
    c: Container,
    paths: list[Path],
    *,
    organization: str,
    email: str,
    show_progress: bool = True,
) -> Any:
    """Read the files and store them as ``email`` of ``organization``."""
    from clinicos.identity import member_actor
    from clinicos.interop.fhir.base import FhirContext
    from clinicos.interop.fhir.registry import RESOURCE_TYPES
    from clinicos.interop.importer import ImportReport, count_patients, import_bundle, read_bundles

    actor = await member_actor(c.uow, organization_slug=organization, email=email)
    ctx = FhirContext(uows=c.uow, phi=c.phi, actor=actor, base_url="urn:clinicos:import")
    bundles = await asyncio.to_thread(lambda: list(read_bundles(paths)))
    total = sum(count_patients(b) for _, b in bundles)
    report = ImportReport()
    with typer.progressbar(
        length=total, label="patients", show_pos=True, hidden=not show_progress
    ) as bar:
        for source, bundle in bundles:
            await import_bundle(
                ctx, source, bundle, RESOURCE_TYPES, report, on_patient=lambda: bar.update(1)
            )
    return report


def _date(value: str | None) -> date:
    from clinicos import cli as root

    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise root._fail("--as-of must be a date YYYY-MM-DD", code=2) from None


async def seed_demo_patients(
    c: Container, *, organization: str, email: str, count: int, seed: int, as_of: date
) -> Any:
    """The named seed patients (P-001, P-002, P-007) and ``count`` synthetic ones, stored in
    ``organization`` as ``email`` — what ``clinicos demo seed`` gives each demo clinic."""
    from clinicos.identity import member_actor
    from clinicos.interop.fhir.base import FhirContext
    from clinicos.interop.fhir.registry import RESOURCE_TYPES
    from clinicos.interop.importer import ImportReport, import_bundle
    from clinicos.interop.synthetic import SEED_PATIENTS, seed_patient_bundle, synthetic_bundles

    actor = await member_actor(c.uow, organization_slug=organization, email=email)
    ctx = FhirContext(uows=c.uow, phi=c.phi, actor=actor, base_url="urn:clinicos:demo")
    report = ImportReport()
    for patient in SEED_PATIENTS:
        await import_bundle(
            ctx, patient.mrn, seed_patient_bundle(patient, as_of=as_of), RESOURCE_TYPES, report
        )
    for index, bundle in enumerate(synthetic_bundles(seed, count, as_of=as_of)):
        await import_bundle(ctx, f"synthetic-{index}", bundle, RESOURCE_TYPES, report)
    return report
