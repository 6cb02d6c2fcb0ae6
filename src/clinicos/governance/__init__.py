"""governance: the hash-chained audit trail (other contexts call ``record_audit``), patients'
consent (other contexts call ``require_consent`` before using data for a purpose that needs
it), feature flags per organization (services read ``flag_enabled``) and the decision-support
KPIs (fed by cds events through the handlers in ``governance.handlers``, which the composition
root registers)."""

import importlib
from typing import TYPE_CHECKING, Any

from clinicos.governance.audit import (
    ChainReport,
    list_audit_events,
    record_audit,
    verify_audit_chain,
)
from clinicos.governance.consent import (
    PURPOSES,
    ConsentRequired,
    ConsentState,
    ConsentView,
    consent_history,
    consent_record,
    consent_state,
    require_consent,
    superseded,
)
from clinicos.governance.dsr import under_legal_hold
from clinicos.governance.errors import InvalidAuditValue
from clinicos.governance.flags import FLAGS, FlagView, flag_enabled, list_flags, set_flag
from clinicos.governance.models import AuditEvent

if TYPE_CHECKING:
    from clinicos.governance.kpi import GRANULARITIES, KpiReport, kpi_report
    from clinicos.governance.kpi_drilldown import (
        KPI_EVENT_METRICS,
        KpiEventPage,
        KpiEventView,
        kpi_events,
    )

# The KPI modules read organizations' timezones through identity, which imports governance
# (record_audit): they load on first use, so importing either package first works.
_LAZY = {
    "GRANULARITIES": "clinicos.governance.kpi",
    "KpiReport": "clinicos.governance.kpi",
    "kpi_report": "clinicos.governance.kpi",
    "KPI_EVENT_METRICS": "clinicos.governance.kpi_drilldown",
    "KpiEventPage": "clinicos.governance.kpi_drilldown",
    "KpiEventView": "clinicos.governance.kpi_drilldown",
    "kpi_events": "clinicos.governance.kpi_drilldown",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FLAGS",
    "GRANULARITIES",
    "KPI_EVENT_METRICS",
    "PURPOSES",
    "AuditEvent",
    "ChainReport",
    "ConsentRequired",
    "ConsentState",
    "ConsentView",
    "FlagView",
    "InvalidAuditValue",
    "KpiEventPage",
    "KpiEventView",
    "KpiReport",
    "consent_history",
    "consent_record",
    "consent_state",
    "flag_enabled",
    "kpi_events",
    "kpi_report",
    "list_audit_events",
    "list_flags",
    "record_audit",
    "require_consent",
    "set_flag",
    "superseded",
    "under_legal_hold",
    "verify_audit_chain",
]
