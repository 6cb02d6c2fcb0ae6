"""Tenant-isolation cases for the notes routes (merged into the identity isolation suite)."""

from __future__ import annotations

from tests.support.isolation import IdRouteCase

NOTE_ID_ROUTE_CASES: dict[tuple[str, str], IdRouteCase] = {}
