"""Pure DOAC decision-support engine: evaluate(facts, order, rule_pack, as_of) -> Evaluation."""

from clinicos.cds.engine.evaluate import evaluate
from clinicos.cds.engine.inputs import Facts, Order
from clinicos.cds.engine.keys import (
    ATTESTABLE_FACTS,
    ENGINE_REASON_KEYS,
    GATE_FACTS,
    AttestableFact,
    Outcome,
    Severity,
)
from clinicos.cds.engine.overlay import OverlayError, PackOverlay, apply_overlay
from clinicos.cds.engine.pack import (
    DEFAULT_PACK_VERSION,
    RulePack,
    available_pack_versions,
    load_rule_pack,
    parse_rule_pack,
)
from clinicos.cds.engine.renal import UMOL_L_PER_MG_DL, cockcroft_gault
from clinicos.cds.engine.result import (
    AttestedOutcome,
    Evaluation,
    PackRef,
    Reason,
    Suggestion,
    outcome_with_attestations,
)
from clinicos.cds.engine.snapshot import order_fingerprint

__all__ = [
    "ATTESTABLE_FACTS",
    "DEFAULT_PACK_VERSION",
    "ENGINE_REASON_KEYS",
    "GATE_FACTS",
    "UMOL_L_PER_MG_DL",
    "AttestableFact",
    "AttestedOutcome",
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
    "order_fingerprint",
    "outcome_with_attestations",
    "parse_rule_pack",
]
