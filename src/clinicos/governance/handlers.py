"""Governance's reactions to other contexts' events (registered by the composition root)."""

from __future__ import annotations

from clinicos.governance.kpi import EVENT_KINDS, project_cds_event
from clinicos.platform.outbox.registry import HandlerRegistry

KPI_HANDLER = "governance.kpi_projection"


def register_governance_handlers(registry: HandlerRegistry) -> None:
    """Decision support's governance events feed the KPI projection."""
    for event_type in EVENT_KINDS:
        registry.register(event_type, KPI_HANDLER, project_cds_event)
