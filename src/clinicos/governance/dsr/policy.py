"""The rules of data-subject requests as plain data and pure functions: kinds, statuses, the
response deadline, legal-hold reasons and what may be erased per data category, with the legal
basis of each decision next to it. Where a choice is ours rather than the law's, it says so."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

Kind = Literal["access", "correction", "portability", "erasure"]
Status = Literal["received", "in_progress", "completed", "rejected", "refused"]
Channel = Literal["in_person", "portal", "email", "phone", "paper", "whatsapp"]
Language = Literal["en", "es", "pt"]
KINDS: tuple[str, ...] = get_args(Kind)
STATUSES: tuple[str, ...] = get_args(Status)
CHANNELS: tuple[str, ...] = get_args(Channel)
LANGUAGES: tuple[str, ...] = get_args(Language)
OPEN_STATUSES: tuple[str, ...] = ("received", "in_progress")

# LGPD Art. 19 II: the complete statement of the data held is due within 15 days of the
# request. We apply the same 15 calendar days to every kind (our policy: it is also shorter
# than GDPR Art. 12(3) — one month — and HIPAA §164.524/§164.526 — 30/60 days).
RESPONSE_DAYS = 15

HoldReason = Literal[
    "litigation",
    "regulatory_investigation",
    "law_enforcement",
    "insurance_claim",
    "internal_investigation",
]
LiftReason = Literal["resolved", "withdrawn", "entered_in_error"]
HOLD_REASONS: tuple[str, ...] = get_args(HoldReason)
LIFT_REASONS: tuple[str, ...] = get_args(LiftReason)


def deadline_for(received_at: datetime) -> datetime:
    """When the answer is due: ``RESPONSE_DAYS`` calendar days after receipt (LGPD Art. 19 II)."""
    return received_at + timedelta(days=RESPONSE_DAYS)


def is_overdue(status: str, deadline_at: datetime, now: datetime) -> bool:
    """Still open after its deadline."""
    return status in OPEN_STATUSES and now > deadline_at


@dataclass(frozen=True)
class Category:
    """A category of data held about a patient and whether an erasure request reaches it."""

    code: str
    erasable: bool
    holds: str  # what the category is, in words
    basis: str  # why it may or may not be erased: the source, or "our policy"


# Brazil's rules are the strictest of the jurisdictions we serve and are applied everywhere
# (our policy). Sources:
# - LGPD (Lei 13.709/2018) Art. 18 VI: erasure of data processed with consent, except the cases
#   of Art. 16; Art. 16 I: data may be kept to comply with a legal or regulatory obligation.
#   GDPR Art. 17(3)(b) and (c) say the same (legal obligation; public health).
# - Lei 13.787/2018 art. 6: medical records may be eliminated only after at least 20 years from
#   the last entry. CFM Res. 1.821/2007 arts. 7-8: electronic records kept permanently, paper
#   ones 20 years. CFM Res. 1.638/2002 art. 5 I a: the record's identification (full name,
#   birth date, sex, mother's name, birthplace, full address) is part of the record.
# - HIPAA §164.316(b)(2)(i): documentation kept 6 years; HIPAA leaves medical-record retention
#   to state law. §164.312(b): audit controls.
# - Bolivia: Ley 3131 (2005, Ejercicio Profesional Médico) and DS 28562 make the clinical record
#   a legal document kept by the institution; we cite no retention period for it — applying the
#   20 years here is our policy until reviewed by counsel.
CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category(
            "contact",
            erasable=True,
            holds="phone, email and preferred language",
            basis=(
                "LGPD Art. 18 VI; not part of the medical record's identification "
                "(CFM Res. 1.638/2002 art. 5) — our reading"
            ),
        ),
        Category(
            "identification",
            erasable=False,
            holds="name, birth date, sex, record number, national id and address",
            basis=(
                "part of the medical record (CFM Res. 1.638/2002 art. 5 I a), kept at least "
                "20 years after the last entry (Lei 13.787/2018 art. 6; LGPD Art. 16 I)"
            ),
        ),
        Category(
            "clinical",
            erasable=False,
            holds="encounters, notes, results, diagnoses, allergies, medications, prescriptions",
            basis=(
                "medical record kept at least 20 years after the last entry (Lei 13.787/2018 "
                "art. 6; CFM Res. 1.821/2007 arts. 7-8; LGPD Art. 16 I; GDPR Art. 17(3)(b),(c))"
            ),
        ),
        Category(
            "consent",
            erasable=False,
            holds="consent decisions and how they were given",
            basis=(
                "proof that consent was obtained (LGPD Art. 8 §2); kept as long as the "
                "record — our policy"
            ),
        ),
        Category(
            "audit",
            erasable=False,
            holds="who accessed or changed the record, and when",
            basis=(
                "record of processing operations (LGPD Art. 37; HIPAA §164.312(b), "
                "§164.316(b)(2)(i) 6 years); append-only, purged only by the retention job"
            ),
        ),
        Category(
            "requests",
            erasable=False,
            holds="data-subject requests and their history",
            basis="evidence the rights were answered (LGPD Art. 37) — kept like audit, our policy",
        ),
    )
}
ErasureCategory = Literal["contact", "identification", "clinical", "consent", "audit", "requests"]
ERASURE_CATEGORIES: tuple[str, ...] = get_args(ErasureCategory)
assert set(ERASURE_CATEGORIES) == set(CATEGORIES)
ERASABLE: tuple[str, ...] = tuple(c for c in ERASURE_CATEGORIES if CATEGORIES[c].erasable)


def erasure_plan(requested: tuple[str, ...] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(to erase, retained among those asked)``. None asks for everything we may erase: then
    nothing asked is retained (what we keep is reported, not refused)."""
    if requested is None:
        return ERASABLE, ()
    erase = tuple(c for c in ERASURE_CATEGORIES if c in requested and CATEGORIES[c].erasable)
    kept = tuple(c for c in ERASURE_CATEGORIES if c in requested and not CATEGORIES[c].erasable)
    return erase, kept
