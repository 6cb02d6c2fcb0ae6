"""The published worked cases (doac-examples.json) through the engine: outcome, CrCl, reasons."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cds.builders import run

EXAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "clinical" / "doac-examples.json"


def _cases() -> list[Any]:
    if not EXAMPLES.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{EXAMPLES} not found"))]
    cases = json.loads(EXAMPLES.read_text(encoding="utf-8"), parse_float=Decimal)
    return [pytest.param(case, id=case["id"]) for case in cases]


@pytest.mark.parametrize("case", _cases())
def test_engine_published_example_matches_expected(case: dict[str, Any]) -> None:
    result = run(case["patient"], case["order"])

    expected = case["expected"]
    crcl = expected["crcl_ml_min"]
    assert result.crcl_ml_min == (None if crcl is None else Decimal(crcl)), case["description"]
    assert result.outcome == expected["outcome"], case["description"]
    assert result.reason_keys == set(case["expected_reasons"]), case["description"]
