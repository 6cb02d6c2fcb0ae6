"""The input snapshot hash's fast canonical text equals the generic canonical JSON, so hashes
stored before the fast path stay comparable."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinicos.cds.engine.inputs import Facts, Order, _normalize_medication
from clinicos.cds.engine.snapshot import (
    _canonical,
    canonical_text,
    input_snapshot_hash,
    snapshot_text,
)

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


# -- the field-by-field snapshot text equals canonical_text of the dumped models -------------

medication_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
).filter(lambda text: _normalize_medication(text) != "")
weights = st.decimals(min_value=Decimal("0.1"), max_value=500, places=2)
creatinines = st.decimals(min_value=Decimal("0.01"), max_value=2000, places=3)
facts_data = st.fixed_dictionaries(
    {"sex": st.sampled_from(["male", "female"])},
    optional={
        "weight_kg": st.none() | weights,
        "weight_measured_at": st.none() | st.dates(),
        "serum_creatinine_mg_dl": st.none() | creatinines,
        "creatinine_measured_at": st.none() | st.dates(),
        "active_bleeding": st.booleans(),
        "mechanical_valve": st.booleans(),
        "pregnant": st.booleans(),
        "other_medications": st.lists(medication_names, max_size=3),
    },
)
ages = st.one_of(
    st.integers(min_value=0, max_value=130).map(lambda age: {"age_years": age}),
    st.dates().map(lambda born: {"birth_date": born}),
)
orders = st.fixed_dictionaries(
    {
        "drug": st.sampled_from(["apixaban", "rivaroxaban", "dabigatran", "edoxaban", "warfarin"]),
        "dose_mg": st.decimals(min_value=Decimal("0.5"), max_value=300, places=2),
        "frequency": st.sampled_from(["QD", "BID"]),
        "indication": st.sampled_from(["nvaf", "vte_treatment", "vte_prophylaxis"]),
    }
)


KNOWN_HASH = "18482a9cc445dcd29164faebc8d75c38818cb70d88eb6a04e7ad1e5488cd5da2"  # HEAD b70314c


def generic_text(facts: Facts, order: Order, as_of: datetime, pack_version: str) -> str:
    """What input_snapshot_hash hashed before the field-by-field writer."""
    return canonical_text(
        {
            "facts": facts.model_dump(),
            "order": order.model_dump(),
            "as_of": as_of,
            "rule_pack": {"id": "doac", "version": pack_version},
        }
    )


@given(facts_data, ages, orders, st.datetimes(timezones=st.just(UTC)), st.text(max_size=8))
def test_snapshot_text_equals_the_canonical_json_of_the_dumped_inputs(
    facts: dict[str, Any],
    age: dict[str, Any],
    order: dict[str, Any],
    as_of: datetime,
    pack_version: str,
) -> None:
    checked_facts = Facts.model_validate(facts | age)
    checked_order = Order.model_validate(order)
    text = snapshot_text(
        facts=checked_facts,
        order=checked_order,
        as_of=as_of,
        pack_id="doac",
        pack_version=pack_version,
    )
    assert text == generic_text(checked_facts, checked_order, as_of, pack_version)
    expected = hashlib.sha256(text.encode("ascii")).hexdigest()
    assert expected == input_snapshot_hash(
        facts=checked_facts,
        order=checked_order,
        as_of=as_of,
        pack_id="doac",
        pack_version=pack_version,
    )


# model_dump warns that the float is not the Decimal the field declares; that is the point.
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_value_the_fast_writer_does_not_know_goes_to_the_generic_encoder() -> None:
    # model_construct skips validation: a float where a Decimal belongs.
    facts = Facts.model_construct(sex="male", age_years=60, weight_kg=67.5)
    order = Order.model_validate(
        {"drug": "apixaban", "dose_mg": "5", "frequency": "BID", "indication": "nvaf"}
    )
    as_of = datetime(2026, 11, 22, 10, tzinfo=UTC)
    text = snapshot_text(facts=facts, order=order, as_of=as_of, pack_id="doac", pack_version="1")
    assert text == generic_text(facts, order, as_of, "1")
    assert '"weight_kg":67.5' in text


def test_known_snapshot_hash_is_unchanged() -> None:
    """A hash stored before the field-by-field writer: the same inputs must still give it."""
    facts = Facts.model_validate(
        {
            "age_years": 60,
            "sex": "male",
            "weight_kg": "67.05",
            "weight_measured_at": "2026-11-15",
            "serum_creatinine_mg_dl": "5.0",
            "creatinine_measured_at": "2026-11-15",
            "other_medications": ["Amiodarone"],
        }
    )
    order = Order.model_validate(
        {"drug": "rivaroxaban", "dose_mg": 15, "frequency": "BID", "indication": "vte_treatment"}
    )
    as_of = datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert (
        input_snapshot_hash(
            facts=facts, order=order, as_of=as_of, pack_id="doac", pack_version="1.0.0"
        )
        == KNOWN_HASH
    )


def test_a_subclass_of_a_known_type_goes_to_the_generic_encoder() -> None:
    class Version(str):
        pass

    facts = Facts.model_validate({"sex": "female", "age_years": 70})
    order = Order.model_validate(
        {"drug": "warfarin", "dose_mg": "5", "frequency": "QD", "indication": "nvaf"}
    )
    as_of = datetime(2026, 11, 22, 10, tzinfo=UTC)
    text = snapshot_text(
        facts=facts, order=order, as_of=as_of, pack_id="doac", pack_version=Version("2")
    )
    assert text == generic_text(facts, order, as_of, "2")
