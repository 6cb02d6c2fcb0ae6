"""Decision support: the public face of the DOAC order check (pure engine and rule packs)."""

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

__all__ = [
    "DEFAULT_PACK_VERSION",
    "Evaluation",
    "Facts",
    "Order",
    "OverlayError",
    "PackOverlay",
    "Reason",
    "RulePack",
    "Suggestion",
    "apply_overlay",
    "available_pack_versions",
    "evaluate",
    "load_rule_pack",
    "parse_rule_pack",
]
