"""What data-subject requests need from the record and the FHIR mapping, passed in by the HTTP
edge (``governance/dsr_routes.py``): governance's services never import records or interop,
which both import governance (ADR 0017)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from clinicos.kernel.actor import Actor
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]


@dataclass(frozen=True)
class DsrPorts:
    """``records`` and ``interop`` functions, by what governance uses them for.

    - ``require_patient(uow, actor, patient_id)``: 404 unless the organization's patient;
    - ``read_subject(uow, phi, actor, patient_id)``: everything the record holds (audited);
    - ``erase_contact(uow, phi, actor, patient_id)``: blank the contact details (audited);
    - ``check_correction(uow, actor, *, patient_id, target, entry_id, field, proposed_value)``;
    - ``apply_correction(*, uows, phi, actor, patient_id, target, entry_id, field,
      proposed_value)``: through the record's own update use case, in its own transaction;
    - ``to_bundle(record, *, consents, accesses, base_url, request_id, generated_at)``.
    """

    require_patient: Callable[[SqlUnitOfWork, Actor, str], Awaitable[None]]
    read_subject: Callable[[SqlUnitOfWork, PhiKeyring, Actor, str], Awaitable[Any]]
    erase_contact: Callable[[SqlUnitOfWork, PhiKeyring, Actor, str], Awaitable[tuple[str, ...]]]
    check_correction: Callable[..., Awaitable[None]]
    apply_correction: Callable[..., Awaitable[int]]
    to_bundle: Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class DsrContext:
    """Who is acting, through which storage, keys and collaborators."""

    uows: UnitOfWorkFor
    phi: PhiKeyring
    actor: Actor
    ports: DsrPorts
