"""Input snapshot hash: sha256 of the canonical JSON of an evaluation's inputs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii
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
    """Stable across runs and processes; governance events store it with the outcome.

    The text is ``canonical_text`` of ``{"facts": facts.model_dump(), "order":
    order.model_dump(), "as_of": as_of, "rule_pack": {"id": …, "version": …}}``, written
    field by field (``snapshot_text``): the generic encoder called back into Python for every
    Decimal and date and was a quarter of an evaluation. ``tests/unit/cds/test_snapshot.py``
    proves both texts equal, so stored hashes stay comparable."""
    text = snapshot_text(
        facts=facts, order=order, as_of=as_of, pack_id=pack_id, pack_version=pack_version
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class _Unsupported(Exception):
    """A value the fast writer does not know: the generic encoder writes the document."""


def _decimal_text(value: Decimal) -> str:
    return encode_basestring_ascii(format(value.normalize(), "f"))


def _date_text(value: date) -> str:
    return encode_basestring_ascii(value.isoformat())


def _sequence_text(value: tuple[Any, ...] | list[Any]) -> str:
    return "[" + ",".join([_value_text(item) for item in value]) + "]"


# Exact types only (a subclass, e.g. an enum, goes to the generic encoder): each writes what
# the C encoder writes for it, with _default's text for Decimals and dates.
_WRITERS: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    bool: ("false", "true").__getitem__,
    int: int.__repr__,
    type(None): {None: "null"}.__getitem__,
    Decimal: _decimal_text,
    date: _date_text,
    datetime: _date_text,
    tuple: _sequence_text,
    list: _sequence_text,
}


def _value_text(value: Any) -> str:
    writer = _WRITERS.get(type(value))
    if writer is None:
        raise _Unsupported
    return writer(value)


def _template(names: tuple[str, ...]) -> str:
    """``{"a":%s,"b":%s}`` for sorted field names (plain identifiers: nothing to escape)."""
    return "{" + ",".join(f'"{name}":%s' for name in names) + "}"


def _fields_text(fields: dict[str, Any], names: tuple[str, ...], template: str) -> str:
    writers = _WRITERS
    texts = []
    for name in names:
        value = fields[name]
        writer = writers.get(type(value))
        if writer is None:
            raise _Unsupported
        texts.append(writer(value))
    return template % tuple(texts)


_FACT_FIELDS = tuple(sorted(Facts.model_fields))
_ORDER_FIELDS = tuple(sorted(Order.model_fields))
_FACTS_TEMPLATE = _template(_FACT_FIELDS)
_ORDER_TEMPLATE = _template(_ORDER_FIELDS)


def snapshot_text(
    *, facts: Facts, order: Order, as_of: datetime, pack_id: str, pack_version: str
) -> str:
    """The canonical JSON text the input snapshot hash is taken of (see input_snapshot_hash)."""
    try:
        # A model's __dict__ holds exactly its field values, as model_dump() returns them
        # for these field types (no nested models).
        return (
            '{"as_of":'
            + _value_text(as_of)
            + ',"facts":'
            + _fields_text(facts.__dict__, _FACT_FIELDS, _FACTS_TEMPLATE)
            + ',"order":'
            + _fields_text(order.__dict__, _ORDER_FIELDS, _ORDER_TEMPLATE)
            + ',"rule_pack":{"id":'
            + _value_text(pack_id)
            + ',"version":'
            + _value_text(pack_version)
            + "}}"
        )
    except _Unsupported:
        document = {
            "facts": facts.model_dump(),
            "order": order.model_dump(),
            "as_of": as_of,
            "rule_pack": {"id": pack_id, "version": pack_version},
        }
        return canonical_text(document)


def order_fingerprint(order: Order) -> str:
    """sha256 of the order's canonical drug, dose, frequency and indication (5 mg == 5.0 mg).

    An attestation is scoped to one order of one patient (issue 5 point 4): the same
    fingerprint means the same order, so a changed dose needs a decision of its own."""
    return hashlib.sha256(canonical_text(order.model_dump()).encode("ascii")).hexdigest()
