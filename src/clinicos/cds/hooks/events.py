"""CDS Hooks domain events (ids, codes and reason keys only; never patient facts or comments)."""

from __future__ import annotations

from dataclasses import dataclass

from clinicos.kernel.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class HookFeedbackRecorded(DomainEvent):
    """A CDS client reported what the user did with a card (issue 5 points 7 and 8).

    ``outcome`` is ``accepted`` or ``overridden``. An override the engine's override use case
    records (a BLOCK/WARN evaluation, first card of it) is announced by ``cds.OverrideRecorded``
    instead; this event covers every other feedback, ``override_id`` naming the evaluation's
    override when one already existed. ``recorded_by`` is the client (or user) id.
    """

    event_type = "cds.HookFeedbackRecorded"
    card_id: str
    evaluation_id: str | None
    reason_key: str
    severity: str
    outcome: str
    reason_code: str | None
    override_id: str | None
    recorded_by: str
    client_id: str | None
