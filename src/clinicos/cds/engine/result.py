"""The engine's output: Evaluation, its reasons and suggestions, and the outcome policy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from clinicos.cds.engine.keys import SEVERITY_RANK, Outcome, PolicyFlag, Severity


@dataclass(frozen=True)
class Suggestion:
    """The dose change that fixes a reason (a CDS Hooks suggestion later)."""

    drug: str
    dose_mg: Decimal
    frequency: str
    text: Mapping[str, str]


@dataclass(frozen=True)
class Reason:
    """One fired rule, explained in en/es/pt with its source and whose rule it is."""

    key: str
    severity: Severity
    messages: Mapping[str, str]
    source: str
    policy: PolicyFlag
    suggestion: Suggestion | None = None

    def message(self, language: str = "en") -> str:
        """The explanation in a language the pack carries (en, es, pt)."""
        return self.messages[language]


@dataclass(frozen=True)
class PackRef:
    """Which rule pack produced an evaluation."""

    id: str
    version: str


@dataclass(frozen=True)
class Evaluation:
    """What evaluate() returns; outcome, CrCl and the reason-key set are what is checked."""

    outcome: Outcome
    crcl_ml_min: Decimal | None
    reasons: tuple[Reason, ...]
    rule_pack: PackRef
    as_of: datetime
    input_hash: str

    @property
    def reason_keys(self) -> frozenset[str]:
        return frozenset(reason.key for reason in self.reasons)


def outcome_of(severities: Iterable[Severity]) -> Outcome:
    """doac-rules.md 0.2: the highest severity, BLOCK > ATTEST > WARN; INFO never raises."""
    raised = [s for s in severities if s != "INFO"]
    if not raised:
        return "PASS"
    top = max(raised, key=SEVERITY_RANK.__getitem__)
    assert top != "INFO"  # filtered above; narrows Severity to Outcome for mypy
    return top
