"""The tamper-evident audit trail: append, verify, list."""

from clinicos.governance.audit.chain import ChainReport
from clinicos.governance.audit.queries import list_audit_events
from clinicos.governance.audit.services import record_audit, verify_audit_chain

__all__ = ["ChainReport", "list_audit_events", "record_audit", "verify_audit_chain"]
