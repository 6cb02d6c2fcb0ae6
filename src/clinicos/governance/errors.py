"""Errors of the governance context.

    ValueError
    └── InvalidAuditValue    an audit field that is not a short id or code (possible PHI)

Audit values come from our own code, never straight from a request body, so a bad one is a
programming error (a ValueError), not a 4xx for the client.
"""

from __future__ import annotations


class InvalidAuditValue(ValueError):
    """An audit field is too long, free text, or outside its allowed set.

    The message names the field, never the value: the value may be the very PHI we refuse.
    """
