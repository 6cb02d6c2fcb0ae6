"""Pure translation of engine results into CDS Hooks 2.0 cards: one card per reason, with its
indicator, source, dose-change suggestion, override reasons and clinicos extension.

No card means PASS (an INFO reason still gets an info card). Cards the service raises itself
(an order or patient it cannot read, list prefetch it was not given) are ATTEST-like warnings:
decision support that could not run must say so, never stay silent.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clinicos.cds.engine import Evaluation, Reason
from clinicos.cds.overrides import OverrideReason

SUMMARY_MAX = 140  # CDS Hooks 2.0: summary "<140 characters"
INDICATORS = {"BLOCK": "critical", "ATTEST": "warning", "WARN": "warning", "INFO": "info"}
OVERRIDABLE = frozenset({"BLOCK", "WARN"})
SERVICE_LABEL = "clinicos DOAC safety"
UCUM = "http://unitsofmeasure.org"
# Keys of the cards the service raises without the engine (not rule-pack reason keys).
ORDER_NOT_CHECKABLE = "order_not_checkable"
PREFETCH_INCOMPLETE = "prefetch_incomplete"
_REPEAT = {"QD": 1, "BID": 2, "TID": 3, "QID": 4}
_DAILYMED = "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid="
_SETID = re.compile(r"setid ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_DOI = re.compile(r"doi:(10\.[^\s,;)]+)")

_LABELS: dict[str, dict[str, str]] = {
    "en": {"source": "Source", "local": "local policy (not the label)", "suggested": "Suggested"},
    "es": {"source": "Fuente", "local": "política local (no la ficha)", "suggested": "Sugerido"},
    "pt": {"source": "Fonte", "local": "política local (não a bula)", "suggested": "Sugerido"},
}
_NOT_CHECKABLE: dict[str, tuple[str, str]] = {
    "en": (
        "Anticoagulant order not checked: required data could not be read.",
        "The DOAC safety check could not run. Complete or correct these fields and sign again:",
    ),
    "es": (
        "Orden de anticoagulante no verificada: faltan datos necesarios.",
        "La verificación de seguridad de ACOD no pudo ejecutarse. Complete o corrija estos "
        "campos y vuelva a firmar:",
    ),
    "pt": (
        "Prescrição de anticoagulante não verificada: faltam dados necessários.",
        "A verificação de segurança de DOAC não pôde ser executada. Complete ou corrija estes "
        "campos e assine novamente:",
    ),
}
_INCOMPLETE: dict[str, tuple[str, str]] = {
    "en": (
        "Active medications or conditions were not sent: interactions were not checked.",
        "The EHR did not send these prefetch lists, so drug interactions, duplicate "
        "anticoagulants, bleeding, mechanical valve and pregnancy were not checked:",
    ),
    "es": (
        "No se enviaron medicamentos o condiciones activas: no se verificaron interacciones.",
        "La HCE no envió estas listas de prefetch; no se verificaron interacciones, "
        "anticoagulantes duplicados, sangrado, válvula mecánica ni embarazo:",
    ),
    "pt": (
        "Medicamentos ou condições ativas não enviados: interações não verificadas.",
        "O PEP não enviou estas listas de prefetch; interações, anticoagulantes duplicados, "
        "sangramento, válvula mecânica e gravidez não foram verificados:",
    ),
}


@dataclass(frozen=True)
class CardDraft:
    """A card body and what the service persists about it (so feedback finds its reason)."""

    uuid: str
    reason_key: str
    severity: str
    body: dict[str, Any]


def summary_of(text: str) -> str:
    """The message's first words within the CDS Hooks limit, cut at a word, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) < SUMMARY_MAX:
        return text
    cut = text[: SUMMARY_MAX - 2].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "\u2026"


def source_of(citation: str) -> dict[str, str]:
    """CDS Hooks ``source``: a short label (the citation's first part) and, when the citation
    names a DailyMed set id or a DOI, a link to it."""
    label = re.split(r"[,;]", citation, maxsplit=1)[0].strip()[:120] or SERVICE_LABEL
    source = {"label": label}
    if match := _SETID.search(citation):
        source["url"] = _DAILYMED + match.group(1)
    elif match := _DOI.search(citation):
        source["url"] = "https://doi.org/" + match.group(1)
    return source


def _crcl_number(crcl: Decimal | None) -> float | None:
    # Already rounded half-up to 0.1 by the engine; one decimal is exact as a JSON number.
    return None if crcl is None else float(crcl)


def _detail(reason: Reason, evaluation: Evaluation, language: str) -> str:
    labels = _LABELS[language]
    lines = [reason.message(language)]
    if evaluation.crcl_ml_min is not None:
        lines.append(f"CrCl (Cockcroft-Gault): **{evaluation.crcl_ml_min} mL/min**")
    if reason.suggestion is not None:
        lines.append(f"**{labels['suggested']}:** {reason.suggestion.text[language]}")
    source = f"**{labels['source']}:** {reason.source}"
    if reason.policy == "local":
        source += f" — *{labels['local']}*"
    lines.append(source)
    return "\n\n".join(lines)


def _suggested_resource(draft: Mapping[str, Any], dose_mg: Decimal, frequency: str) -> Any:
    """The draft MedicationRequest with the suggested dose and a daily-frequency timing (the
    first dosage instruction and its first dose are replaced; anything else is kept)."""
    resource = copy.deepcopy(dict(draft))
    dosages = resource.get("dosageInstruction")
    dosages = dosages if isinstance(dosages, list) else []
    dosage = dict(dosages[0]) if dosages and isinstance(dosages[0], dict) else {}
    rates = dosage.get("doseAndRate")
    rates = rates if isinstance(rates, list) else []
    first = dict(rates[0]) if rates and isinstance(rates[0], dict) else {}
    first["doseQuantity"] = {"value": float(dose_mg), "unit": "mg", "system": UCUM, "code": "mg"}
    timing = dict(dosage["timing"]) if isinstance(dosage.get("timing"), dict) else {}
    timing.pop("code", None)
    timing["repeat"] = {"frequency": _REPEAT[frequency], "period": 1, "periodUnit": "d"}
    dosage["doseAndRate"] = [first, *rates[1:]]
    dosage["timing"] = timing
    resource["dosageInstruction"] = [dosage, *dosages[1:]]
    return resource


def _coding(reason: OverrideReason) -> dict[str, str]:
    return {"code": reason.code, "system": reason.system, "display": reason.display}


def reason_cards(
    *,
    evaluation: Evaluation,
    evaluation_id: str,
    draft: Mapping[str, Any],
    draft_reference: str | None,
    language: str,
    override_reasons: Sequence[OverrideReason],
    new_uuid: Any,
) -> list[CardDraft]:
    """One card per reason of an evaluation (none for PASS without INFO)."""
    cards = []
    for reason in evaluation.reasons:
        uuid = str(new_uuid())
        body: dict[str, Any] = {
            "uuid": uuid,
            "summary": summary_of(reason.message(language)),
            "indicator": INDICATORS[reason.severity],
            "detail": _detail(reason, evaluation, language),
            "source": source_of(reason.source),
        }
        if reason.suggestion is not None:
            suggestion = reason.suggestion
            text = suggestion.text[language]
            body["suggestions"] = [
                {
                    "label": summary_of(text),
                    "uuid": str(new_uuid()),
                    "isRecommended": True,
                    "actions": [
                        {
                            "type": "update",
                            "description": text,
                            "resource": _suggested_resource(
                                draft, suggestion.dose_mg, suggestion.frequency
                            ),
                        }
                    ],
                }
            ]
            body["selectionBehavior"] = "at-most-one"
        if reason.severity in OVERRIDABLE:
            body["overrideReasons"] = [_coding(r) for r in override_reasons]
        body["extension"] = {
            "clinicos.reason": reason.key,
            "clinicos.severity": reason.severity,
            "clinicos.policy": reason.policy,
            "clinicos.crcl_ml_min": _crcl_number(evaluation.crcl_ml_min),
            "clinicos.evaluation_id": evaluation_id,
            "clinicos.outcome": evaluation.outcome,
            "clinicos.draft_order": draft_reference,
        }
        cards.append(CardDraft(uuid, reason.key, reason.severity, body))
    return cards


def _service_card(
    *,
    key: str,
    texts: tuple[str, str],
    fields: Sequence[str],
    draft_reference: str | None,
    new_uuid: Any,
) -> CardDraft:
    uuid = str(new_uuid())
    summary, lead = texts
    detail = lead + "\n\n" + "\n".join(f"- `{name}`" for name in fields)
    body = {
        "uuid": uuid,
        "summary": summary_of(summary),
        "indicator": "warning",
        "detail": detail,
        "source": {"label": SERVICE_LABEL},
        "extension": {
            "clinicos.reason": key,
            "clinicos.severity": "ATTEST",
            "clinicos.crcl_ml_min": None,
            "clinicos.evaluation_id": None,
            "clinicos.fields": list(fields),
            "clinicos.draft_order": draft_reference,
        },
    }
    return CardDraft(uuid, key, "ATTEST", body)


def not_checkable_card(
    *, fields: Sequence[str], draft_reference: str | None, language: str, new_uuid: Any
) -> CardDraft:
    """The order is an anticoagulant but the engine could not run: which fields to fix."""
    return _service_card(
        key=ORDER_NOT_CHECKABLE,
        texts=_NOT_CHECKABLE[language],
        fields=fields,
        draft_reference=draft_reference,
        new_uuid=new_uuid,
    )


def prefetch_incomplete_card(*, keys: Sequence[str], language: str, new_uuid: Any) -> CardDraft:
    """The engine ran without the medication or condition list: say what was not checked."""
    return _service_card(
        key=PREFETCH_INCOMPLETE,
        texts=_INCOMPLETE[language],
        fields=[f"prefetch.{key}" for key in keys],
        draft_reference=None,
        new_uuid=new_uuid,
    )
