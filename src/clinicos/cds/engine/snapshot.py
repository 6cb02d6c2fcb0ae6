"""Input snapshot hash: sha256 of the canonical JSON of an evaluation's inputs."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from clinicos.cds.engine.inputs import Facts, Order


def _canonical(value: Any) -> Any:
    """Decimals as plain normalized text (5 == 5.0), dates as ISO 8601, tuples as lists."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _default(value: Any) -> str:
    """What JSON cannot encode itself, as _canonical writes it."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not an evaluation input type")


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_default
)


def canonical_text(value: Any) -> str:
    """``json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"),
    ensure_ascii=True)`` in one pass of the C encoder: the hash is computed on every
    evaluation and converting the whole document first cost about 40% of one (measured with
    the published examples). ``tests/unit/cds/test_snapshot.py`` checks both give the same
    text, so stored hashes stay comparable."""
    return _ENCODER.encode(value)


def input_snapshot_hash(
    *, facts: Facts, order: Order, as_of: datetime, pack_id: str, pack_version: str
) -> str:
    """Stable across runs and processes; governance events store it with the outcome."""
    document = {
        "facts": facts.model_dump(),
        "order": order.model_dump(),
        "as_of": as_of,
        "rule_pack": {"id": pack_id, "version": pack_version},
    }
    return hashlib.sha256(canonical_text(document).encode("ascii")).hexdigest()


def order_fingerprint(order: Order) -> str:
    """sha256 of the order's canonical drug, dose, frequency and indication (5 mg == 5.0 mg).

    An attestation is scoped to one order of one patient (issue 5 point 4): the same
    fingerprint means the same order, so a changed dose needs a decision of its own."""
    return hashlib.sha256(canonical_text(order.model_dump()).encode("ascii")).hexdigest()
