"""Decision support: the public face of the DOAC order check (pure engine, rule packs and their
lifecycle, and the use case that runs a check and records it as a governance event)."""

from clinicos.cds.engine import (
    DEFAULT_PACK_VERSION,
    Evaluation,
    Facts,
    Order,
    OverlayError,
    PackOverlay,
    Reason,
    RulePack,
    Suggestion,
    apply_overlay,
    available_pack_versions,
    evaluate,
    load_rule_pack,
    parse_rule_pack,
)
from clinicos.cds.events import EvaluationRecorded
from clinicos.cds.packs import (
    RulePackNotActive,
    RulePackNotApproved,
    activate_pack,
    active_rule_pack,
    approve_pack,
    list_packs,
    show_pack,
)
from clinicos.cds.services import RecordedEvaluation, record_inline_evaluation

__all__ = [
    "DEFAULT_PACK_VERSION",
    "Evaluation",
    "EvaluationRecorded",
    "Facts",
    "Order",
    "OverlayError",
    "PackOverlay",
    "Reason",
    "RecordedEvaluation",
    "RulePack",
    "RulePackNotActive",
    "RulePackNotApproved",
    "Suggestion",
    "activate_pack",
    "active_rule_pack",
    "apply_overlay",
    "approve_pack",
    "available_pack_versions",
    "evaluate",
    "list_packs",
    "load_rule_pack",
    "parse_rule_pack",
    "record_inline_evaluation",
    "show_pack",
]
