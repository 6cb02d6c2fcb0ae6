"""Pure DOAC decision-support engine: evaluate(facts, order, rule_pack, as_of) -> Evaluation."""

from clinicos.cds.engine.evaluate import evaluate
from clinicos.cds.engine.inputs import Facts, Order
from clinicos.cds.engine.keys import ENGINE_REASON_KEYS, Outcome, Severity
from clinicos.cds.engine.overlay import OverlayError, PackOverlay, apply_overlay
from clinicos.cds.engine.pack import (
    DEFAULT_PACK_VERSION,
    RulePack,
    available_pack_versions,
    load_rule_pack,
    parse_rule_pack,
)
from clinicos.cds.engine.renal import UMOL_L_PER_MG_DL, cockcroft_gault
from clinicos.cds.engine.result import Evaluation, PackRef, Reason, Suggestion

__all__ = [
    "DEFAULT_PACK_VERSION",
    "ENGINE_REASON_KEYS",
    "UMOL_L_PER_MG_DL",
    "Evaluation",
    "Facts",
    "Order",
    "Outcome",
    "OverlayError",
    "PackOverlay",
    "PackRef",
    "Reason",
    "RulePack",
    "Severity",
    "Suggestion",
    "apply_overlay",
    "available_pack_versions",
    "cockcroft_gault",
    "evaluate",
    "load_rule_pack",
    "parse_rule_pack",
]
