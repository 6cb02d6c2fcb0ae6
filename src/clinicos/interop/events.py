"""Interop's domain events (ids, codes and counts only)."""

from __future__ import annotations

from dataclasses import dataclass

from clinicos.kernel.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class ResearchExportCompleted(DomainEvent):
    """A de-identified research export ran: who asked, what it selected and how many patients
    it included or left out for want of research consent (counts; no patient is named)."""

    event_type = "interop.ResearchExportCompleted"
    export_id: str
    requested_by: str
    datasets: list[str]
    date_precision: str
    patients_included: int
    patients_excluded_for_consent: int
