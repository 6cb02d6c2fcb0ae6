"""Database plumbing: declarative base, engine set-up, unit of work, schema state."""

from clinicos.platform.db.base import Base, UTCDateTime
from clinicos.platform.db.engine import create_engine_from_settings, session_factory
from clinicos.platform.db.uow import SqlUnitOfWork, UnitOfWorkFactory

__all__ = [
    "Base",
    "SqlUnitOfWork",
    "UTCDateTime",
    "UnitOfWorkFactory",
    "create_engine_from_settings",
    "session_factory",
]
