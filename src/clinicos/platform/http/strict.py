"""Request bodies mean what their JSON says.

Pydantic's lax mode (which FastAPI uses to validate bodies, in Python mode) turns ``0`` into
``false``, ``"5"`` into ``5`` and ``0.5`` into a datetime in 1970. A clinical API must refuse
those instead of guessing (found by the API fuzzer, tests/fuzz): ``StrictBody`` refuses a JSON
value whose type does not match the field's (a boolean must be ``true``/``false``, a number must
be a number, a date or time must be a string) before the fields are parsed, naming the field.
Strings that parse stay accepted where they are the precise form (ISO 8601 dates and times,
decimals written as strings)."""

from __future__ import annotations

import re
import types
import typing
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    FutureDate,
    FutureDatetime,
    NaiveDatetime,
    PastDate,
    PastDatetime,
    model_validator,
)
from pydantic_core import PydanticCustomError

_NUMBER = (int, float, Decimal)
# pydantic's constrained date/time types are marker classes, not subclasses of datetime.
_TEMPORAL = (date, datetime, time)
_TEMPORAL_MARKERS = (
    AwareDatetime,
    NaiveDatetime,
    PastDate,
    FutureDate,
    PastDatetime,
    FutureDatetime,
)
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _leaf_types(annotation: Any) -> set[type]:
    """The plain types a field may hold (unwrapping Optional, unions and Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _leaf_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found: set[type] = set()
        for arg in typing.get_args(annotation):
            found |= _leaf_types(arg)
        return found
    if origin is not None:  # list[...], dict[...]: the container; Literal[...]: anything
        return {origin} if isinstance(origin, type) else {object}
    if isinstance(annotation, type):
        return {annotation}
    return {object}  # a type this check does not know: never refused here


def _mismatch(kinds: set[type], value: Any) -> str | None:
    kinds = kinds - {type(None)}
    if value is None or not kinds:
        return None
    if kinds == {bool} and not isinstance(value, bool):
        return "true or false"
    # Decimals may also come as strings ("2.5"): that keeps their precision exact.
    numeric = {k for k in kinds if issubclass(k, (int, float)) and k is not bool}
    if (
        numeric
        and kinds <= numeric | {type(None)}
        and not (isinstance(value, _NUMBER) and not isinstance(value, bool))
    ):
        return "a number"
    temporal = {k for k in kinds if issubclass(k, _TEMPORAL) or k in _TEMPORAL_MARKERS}
    if temporal and kinds <= temporal and not isinstance(value, str):
        return "a date or time written as an ISO 8601 string"
    return None


class StrictBody(BaseModel):
    """Base of request bodies: unknown fields refused, and JSON types checked (see module)."""

    @model_validator(mode="before")
    @classmethod
    def _json_types_match(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            key = field.alias or name
            if key not in data:
                continue
            expected = _mismatch(_leaf_types(field.annotation), data[key])
            if expected is not None:
                raise PydanticCustomError(
                    "json_type",
                    "field '{field}' must be {expected}",
                    {"field": key, "expected": expected},
                )
        return data


def _iso_datetime(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_DATETIME.match(value):
        raise PydanticCustomError(
            "datetime_format", "must be an ISO 8601 date and time with an offset"
        )
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 parses but has no UTC instant
        raise PydanticCustomError("datetime_range", "is outside the range of dates") from None


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_datetime), AfterValidator(_in_utc)]
"""A query parameter's datetime, in UTC: ISO 8601 text only (lax parsing would take ``0.5`` as
1970), and one that has a UTC instant (the database stores UTC)."""
