"""The rule checks, one module per family; run_checks evaluates every one of them."""

from __future__ import annotations

from collections.abc import Callable

from clinicos.cds.engine.checks import apixaban, dabigatran, edoxaban, general, rivaroxaban
from clinicos.cds.engine.context import Context, Finding

Check = Callable[[Context], list[Finding]]

ALL_CHECKS: tuple[Check, ...] = (
    general.check_contraindications,
    general.check_pregnancy,
    general.check_duplicate_anticoagulant,
    general.check_data_gates,
    general.check_crcl_floor,
    general.check_inducers,
    general.check_labelled_regimen,
    general.check_beers,
    apixaban.check_apixaban,
    rivaroxaban.check_rivaroxaban,
    dabigatran.check_dabigatran,
    edoxaban.check_edoxaban,
)


def run_checks(context: Context) -> list[Finding]:
    """Every rule is evaluated (doac-rules.md 0.2); each check decides if it applies."""
    return [finding for check in ALL_CHECKS for finding in check(context)]
