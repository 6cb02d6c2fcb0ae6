"""Domain event base: immutable facts, named in the past tense, stored in the outbox on commit."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from clinicos.kernel.clock import utc_now
from clinicos.kernel.ids import new_id


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Subclasses set ``event_type`` (``"<context>.<PastTense>"``) and add their own fields.

    Fields must be JSON-serialisable (str, int, float, bool, None, lists and dicts of those,
    or datetimes, which are stored as ISO 8601). Events carry ids, never PHI values.
    """

    event_type: ClassVar[str] = ""
    organization_id: str | None = None
    event_id: str = field(default_factory=new_id)
    occurred_at: datetime = field(default_factory=utc_now)

    def payload(self) -> dict[str, Any]:
        """The subclass's own fields, JSON-ready (envelope fields excluded)."""
        envelope = {"organization_id", "event_id", "occurred_at"}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in envelope:
                continue
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    def __post_init__(self) -> None:
        if not type(self).event_type:
            raise TypeError(f"{type(self).__name__} must set event_type")
