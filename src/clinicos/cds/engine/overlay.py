"""Organization overlays: a stricter local variant of a pack, merged and re-validated."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from clinicos.cds.engine.keys import SEVERITY_RANK, Severity
from clinicos.cds.engine.pack import Messages, RulePack, StrictModel, Thresholds


class RuleOverride(StrictModel):
    """A changed rule; it is always local policy and must say why (its source)."""

    policy: Literal["local"]
    source: str = Field(min_length=1)
    severity: Severity | None = None
    messages: Messages | None = None


class ThresholdOverride(StrictModel):
    """A changed threshold; every rule that reads it becomes local policy."""

    policy: Literal["local"]
    source: str = Field(min_length=1)
    value: Decimal


class PackOverlay(StrictModel):
    """An organization's changes on top of one exact base pack version."""

    base_id: str
    base_version: str
    version: str = Field(min_length=1)
    reviewer: str | None
    approved_at: datetime | None
    rules: dict[str, RuleOverride] = Field(default_factory=dict)
    thresholds: dict[str, ThresholdOverride] = Field(default_factory=dict)


class OverlayError(ValueError):
    """The overlay does not fit its base pack or would weaken a rule."""


def apply_overlay(pack: RulePack, overlay: PackOverlay | Mapping[str, Any]) -> RulePack:
    """Merge ``overlay`` into ``pack`` and validate the result as a new pack version.

    Only stricter variants are accepted: a rule's severity may be raised, never lowered. The
    approval of the base pack does not carry over; the overlay names its own reviewer.
    """
    if not isinstance(overlay, PackOverlay):
        overlay = PackOverlay.model_validate(overlay)
    if (overlay.base_id, overlay.base_version) != (pack.id, pack.version):
        raise OverlayError(f"overlay is for {overlay.base_id} {overlay.base_version}")
    if overlay.version == pack.version:
        raise OverlayError("an overlay must carry its own version")
    data = pack.model_dump()
    for key, change in overlay.rules.items():
        _merge_rule(data["rules"], key, change)
    for name, threshold in overlay.thresholds.items():
        _merge_threshold(data, name, threshold)
    data.update(version=overlay.version, reviewer=overlay.reviewer)
    data["approved_at"] = overlay.approved_at
    return RulePack.model_validate(data)


def _merge_rule(rules: dict[str, Any], key: str, change: RuleOverride) -> None:
    if key not in rules:
        raise OverlayError(f"overlay changes unknown rule '{key}'")
    rule = rules[key]
    if change.severity is not None:
        if SEVERITY_RANK[change.severity] < SEVERITY_RANK[rule["severity"]]:
            raise OverlayError(f"overlay may not lower the severity of '{key}'")
        rule["severity"] = change.severity
    if change.messages is not None:
        rule["messages"] = change.messages.model_dump()
    rule.update(policy="local", source=change.source)


def _merge_threshold(data: dict[str, Any], name: str, change: ThresholdOverride) -> None:
    if name not in Thresholds.model_fields:
        raise OverlayError(f"overlay changes unknown threshold '{name}'")
    threshold = data["thresholds"][name]
    threshold.update(value=change.value, source=change.source, policy="local")
    for key in threshold["rules"]:
        data["rules"][key]["policy"] = "local"
