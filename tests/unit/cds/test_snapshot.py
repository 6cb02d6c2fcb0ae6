"""The input snapshot hash's fast canonical text equals the generic canonical JSON, so hashes
stored before the fast path stay comparable."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinicos.cds.engine.snapshot import _canonical, canonical_text

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.text(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1000, max_value=1000),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)


def reference(value: Any) -> str:
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@given(values)
def test_fast_canonical_text_equals_the_canonical_json(value: Any) -> None:
    assert canonical_text(value) == reference(value)


def test_known_document_text() -> None:
    document = {
        "b": [Decimal("5.0"), date(2026, 11, 15)],
        "a": {"n": None, "t": True, "s": "ñ"},
        "at": datetime(2026, 11, 22, 10, tzinfo=UTC),
    }
    assert canonical_text(document) == (
        '{"a":{"n":null,"s":"\\u00f1","t":true},"at":"2026-11-22T10:00:00+00:00",'
        '"b":["5","2026-11-15"]}'
    )


def test_a_type_that_is_no_evaluation_input_is_refused() -> None:
    with pytest.raises(TypeError, match="not an evaluation input type"):
        canonical_text({"x": object()})
