"""governance: the hash-chained audit trail (other contexts call ``record_audit``), patients'
consent (other contexts call ``require_consent`` before using data for a purpose that needs
it), feature flags per organization (services read ``flag_enabled``) and the decision-support
KPIs (fed by cds events through the handlers in ``governance.handlers``, which the composition
root registers)."""

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

__all__ = [
    "FLAGS",
    "PURPOSES",
    "AuditEvent",
    "ChainReport",
    "ConsentRequired",
    "ConsentState",
    "ConsentView",
    "FlagView",
    "InvalidAuditValue",
    "consent_history",
    "consent_record",
    "consent_state",
    "flag_enabled",
    "list_audit_events",
    "list_flags",
    "record_audit",
    "require_consent",
    "set_flag",
    "superseded",
    "under_legal_hold",
    "verify_audit_chain",
]
