"""The published DOAC worked cases (``doac-examples.json``), as committed under tests/data so a
clean clone runs them wherever it lives. The design folder beside the repository
(``../shared/clinical``) is the source: when it is present, the copy must equal it
(``tests/unit/cds/test_examples.py`` checks), so an update there cannot be missed."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = REPOSITORY / "tests" / "data" / "doac-examples.json"
SOURCE = REPOSITORY.parent / "shared" / "clinical" / "doac-examples.json"


def load_examples() -> list[dict[str, Any]]:
    """Every case, decimals exact (CrCl is compared to one decimal)."""
    cases: list[dict[str, Any]] = json.loads(
        EXAMPLES.read_text(encoding="utf-8"), parse_float=Decimal
    )
    return cases
