"""Identifier generation for rows and events."""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A new random identifier (UUID4, canonical text form) for rows and events."""
    return str(uuid.uuid4())
