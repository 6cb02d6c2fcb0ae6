"""The published worked cases (doac-examples.json) through the engine: outcome, CrCl, reasons."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.support.clinical_examples import EXAMPLES, SOURCE, load_examples
from tests.unit.cds.builders import run


def _cases() -> list[Any]:
    return [pytest.param(case, id=case["id"]) for case in load_examples()]


def test_committed_examples_equal_the_design_folder_when_it_is_beside_the_repository() -> None:
    if not SOURCE.exists():
        pytest.skip("the design folder is not beside this checkout (a clean CI clone)")
    committed = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    source = json.loads(SOURCE.read_text(encoding="utf-8"))
    assert committed == source, "tests/data/doac-examples.json is stale: copy shared's again"


def test_every_published_example_is_run() -> None:
    assert len(load_examples()) >= 15


@pytest.mark.parametrize("case", _cases())
def test_engine_published_example_matches_expected(case: dict[str, Any]) -> None:
    result = run(case["patient"], case["order"])

    expected = case["expected"]
    crcl = expected["crcl_ml_min"]
    assert result.crcl_ml_min == (None if crcl is None else Decimal(crcl)), case["description"]
    assert result.outcome == expected["outcome"], case["description"]
    assert result.reason_keys == set(case["expected_reasons"]), case["description"]
