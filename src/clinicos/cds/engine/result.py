"""The engine's output: Evaluation, its reasons and suggestions, and the outcome policy (with
and without attestations of the gated data)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from clinicos.cds.engine.keys import (
    GATE_FACTS,
    SEVERITY_RANK,
    AttestableFact,
    Outcome,
    PolicyFlag,
    Severity,
)


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


@dataclass(frozen=True)
class AttestedOutcome:
    """An evaluation's outcome once valid attestations are taken into account.

    ``attested`` maps each ATTEST reason whose fact is attested to the attestation's id;
    ``unattested`` lists the ATTEST reasons left open. ``outcome`` proceeds past ATTEST only
    when no ATTEST reason is left open and at least one was attested (``proceeds``)."""

    outcome: Outcome
    attested: Mapping[str, str]
    unattested: tuple[str, ...]

    @property
    def proceeds(self) -> bool:
        return bool(self.attested) and not self.unattested

    @property
    def attestation_ids(self) -> tuple[str, ...]:
        """The attestations used, each once, sorted (what governance records)."""
        return tuple(sorted(set(self.attested.values())))


def outcome_with_attestations(
    reasons: Iterable[Reason], attested_facts: Mapping[AttestableFact, str]
) -> AttestedOutcome:
    """doac-rules.md 0.2 with the attestation gate (issue 5 point 4), a pure function.

    ``attested_facts`` maps a fact (``serum_creatinine``, ``weight``) to the id of a valid
    attestation of it for this patient and order (finding them is the caller's job). An ATTEST
    reason is attested when its fact is (``GATE_FACTS``). When **every** ATTEST reason is
    attested the outcome is computed from the other reasons alone (BLOCK > WARN > PASS; INFO
    never raises); otherwise it is the engine's outcome unchanged (ATTEST, or BLOCK when a
    BLOCK reason fired too), and the attested reasons are still reported as such. The rules the
    data gate skipped stay skipped: an attestation vouches that checking without the data is
    acceptable, it does not invent the data."""
    reasons = tuple(reasons)
    gated = [r for r in reasons if r.severity == "ATTEST"]
    attested: dict[str, str] = {}
    for reason in gated:
        fact = GATE_FACTS.get(reason.key)
        if fact is not None and fact in attested_facts:
            attested[reason.key] = attested_facts[fact]
    unattested = tuple(r.key for r in gated if r.key not in attested)
    # With every gate attested, ATTEST no longer counts; with one left open, everything does.
    counted = [r.severity for r in reasons if unattested or r.severity != "ATTEST"]
    return AttestedOutcome(outcome=outcome_of(counted), attested=attested, unattested=unattested)
