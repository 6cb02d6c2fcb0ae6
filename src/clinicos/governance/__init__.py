"""governance: the hash-chained audit trail (other contexts call ``record_audit``)."""

from clinicos.governance.audit import (
    ChainReport,
    list_audit_events,
    record_audit,
    verify_audit_chain,
)
from clinicos.governance.errors import InvalidAuditValue
from clinicos.governance.models import AuditEvent

__all__ = [
    "AuditEvent",
    "ChainReport",
    "InvalidAuditValue",
    "list_audit_events",
    "record_audit",
    "verify_audit_chain",
]
