"""evaluate(): the pure, deterministic DOAC order check over facts, order, pack and date."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from clinicos.cds.engine.checks import run_checks
from clinicos.cds.engine.context import Context, Finding, build_context
from clinicos.cds.engine.inputs import Facts, Order
from clinicos.cds.engine.keys import DOSE_SELECTION_KEYS, SEVERITY_RANK
from clinicos.cds.engine.pack import RulePack
from clinicos.cds.engine.result import Evaluation, PackRef, Reason, Suggestion, outcome_of
from clinicos.cds.engine.snapshot import input_snapshot_hash


def evaluate(
    facts: Facts | Mapping[str, Any],
    order: Order | Mapping[str, Any],
    rule_pack: RulePack,
    as_of: datetime,
) -> Evaluation:
    """Check one anticoagulant order; same inputs always give the same Evaluation.

    ``as_of`` must be timezone-aware; data age is counted in whole UTC days to its UTC date.
    Raises ValueError (pydantic ValidationError) for invalid facts or order.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    as_of = as_of.astimezone(UTC)
    facts = facts if isinstance(facts, Facts) else Facts.model_validate(facts)
    order = order if isinstance(order, Order) else Order.model_validate(order)
    context = build_context(facts, order, rule_pack, as_of.date())
    findings = run_checks(context)
    if context.below_crcl_floor:
        # doac-rules.md 0.2: below CrCl 15 the dose-selection rules are not evaluated.
        findings = [f for f in findings if f.key not in DOSE_SELECTION_KEYS]
    reasons = _reasons(context, findings)
    return Evaluation(
        outcome=outcome_of(r.severity for r in reasons),
        crcl_ml_min=context.crcl,
        reasons=reasons,
        rule_pack=PackRef(rule_pack.id, rule_pack.version),
        as_of=as_of,
        input_hash=input_snapshot_hash(
            facts=facts,
            order=order,
            as_of=as_of,
            pack_id=rule_pack.id,
            pack_version=rule_pack.version,
        ),
    )


def _reasons(context: Context, findings: list[Finding]) -> tuple[Reason, ...]:
    """One reason per fired key, most severe first, then in the pack's rule order."""
    order_of = context.index.rule_order
    unique = {finding.key: finding for finding in findings}
    reasons = [_reason(context, finding) for finding in unique.values()]
    return tuple(sorted(reasons, key=lambda r: (-SEVERITY_RANK[r.severity], order_of[r.key])))


def _reason(context: Context, finding: Finding) -> Reason:
    rule = context.pack.rules[finding.key]
    suggestion = None
    if finding.dose_mg is not None and finding.frequency is not None:
        suggestion = _suggestion(context, finding.dose_mg, finding.frequency)
    return Reason(
        key=finding.key,
        severity=rule.severity,
        messages=dict(context.index.messages[finding.key]),
        source=rule.source,
        policy=rule.policy,
        suggestion=suggestion,
    )


def _suggestion(context: Context, dose_mg: Decimal, frequency: str) -> Suggestion:
    template = context.index.suggestion_template
    dose_text = format(dose_mg.normalize(), "f")
    drug = context.order.drug
    text = {
        language: pattern.format(drug=drug, dose_mg=dose_text, frequency=frequency)
        for language, pattern in template.items()
    }
    return Suggestion(drug=drug, dose_mg=dose_mg, frequency=frequency, text=text)
