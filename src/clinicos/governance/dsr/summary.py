"""The human-readable side of an access report: what we hold about the patient, counted by
category, who accessed the record, and what is kept and why — in English, Spanish or
Portuguese, as plain text (Markdown-friendly). A pure function of the FHIR Bundle it summarises,
so the summary can never say something the Bundle does not hold."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from clinicos.governance.dsr.policy import CATEGORIES, RESPONSE_DAYS

# Resource types in the order the summary lists them.
_ORDER = (
    "Patient",
    "Encounter",
    "DocumentReference",
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationStatement",
    "MedicationRequest",
    "Consent",
)

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Access report for data-subject request {request_id}",
        "generated": (
            "Generated {at} (UTC). The attached FHIR Bundle holds every item counted here."
        ),
        "held": "What we hold about you",
        "Patient": "Identification and contact details",
        "Encounter": "Visits and contacts",
        "DocumentReference": "Clinical notes",
        "Observation": "Measurements and test results",
        "Condition": "Diagnoses and problems",
        "AllergyIntolerance": "Allergies and intolerances",
        "MedicationStatement": "Medication list entries",
        "MedicationRequest": "Prescriptions",
        "Consent": "Consent decisions",
        "accesses": "Who accessed your record",
        "access_count": (
            "{n} recorded accesses by {actors} people or systems, from {first} to {last}."
        ),
        "no_access": "No access to your record is recorded.",
        "by_actor": "{actor}: {n} (last on {last})",
        "kept": "What we must keep, and why",
        "rights": (
            "You may ask us to correct, export or erase your data. Erasure reaches what the law "
            "lets us erase; we answer every request within {days} days."
        ),
    },
    "es": {
        "title": "Informe de acceso de la solicitud {request_id}",
        "generated": (
            "Generado el {at} (UTC). El Bundle FHIR adjunto contiene todo lo contado aquí."
        ),
        "held": "Lo que tenemos sobre usted",
        "Patient": "Datos de identificación y de contacto",
        "Encounter": "Consultas y contactos",
        "DocumentReference": "Notas clínicas",
        "Observation": "Mediciones y resultados de exámenes",
        "Condition": "Diagnósticos y problemas",
        "AllergyIntolerance": "Alergias e intolerancias",
        "MedicationStatement": "Medicamentos en su lista",
        "MedicationRequest": "Recetas",
        "Consent": "Decisiones de consentimiento",
        "accesses": "Quién accedió a su historia clínica",
        "access_count": (
            "{n} accesos registrados de {actors} personas o sistemas, del {first} al {last}."
        ),
        "no_access": "No hay accesos registrados a su historia clínica.",
        "by_actor": "{actor}: {n} (último el {last})",
        "kept": "Lo que debemos conservar y por qué",
        "rights": (
            "Puede pedirnos corregir, exportar o eliminar sus datos. La eliminación alcanza lo "
            "que la ley permite eliminar; respondemos cada solicitud en {days} días."
        ),
    },
    "pt": {
        "title": "Relatório de acesso da solicitação {request_id}",
        "generated": "Gerado em {at} (UTC). O Bundle FHIR anexo contém tudo o que é contado aqui.",
        "held": "O que mantemos sobre você",
        "Patient": "Dados de identificação e de contato",
        "Encounter": "Atendimentos e contatos",
        "DocumentReference": "Notas clínicas",
        "Observation": "Medições e resultados de exames",
        "Condition": "Diagnósticos e problemas",
        "AllergyIntolerance": "Alergias e intolerâncias",
        "MedicationStatement": "Medicamentos na sua lista",
        "MedicationRequest": "Prescrições",
        "Consent": "Decisões de consentimento",
        "accesses": "Quem acessou seu prontuário",
        "access_count": (
            "{n} acessos registrados de {actors} pessoas ou sistemas, de {first} a {last}."
        ),
        "no_access": "Nenhum acesso ao seu prontuário está registrado.",
        "by_actor": "{actor}: {n} (último em {last})",
        "kept": "O que devemos guardar e por quê",
        "rights": (
            "Você pode pedir a correção, a exportação ou a eliminação dos seus dados. A "
            "eliminação alcança o que a lei permite eliminar; respondemos a cada solicitação "
            "em {days} dias."
        ),
    },
}


def _day(instant: str) -> str:
    return instant[:10]


def _actor(resource: dict[str, Any]) -> str:
    who = resource["agent"][0]["who"]
    return str(who.get("identifier", {}).get("value") or who.get("display") or "unknown")


def summarize(
    bundle: dict[str, Any], *, language: str, request_id: str, generated_at: datetime
) -> str:
    """The report's text in ``language`` (en, es, pt): counts per category of the Bundle's
    resources, the accesses (``AuditEvent``) per actor id, and the categories we keep with
    their legal basis. Ids and counts only: the Bundle carries the data itself."""
    text = MESSAGES[language]
    resources = [e["resource"] for e in bundle.get("entry", [])]
    counts = Counter(r["resourceType"] for r in resources)
    lines = [
        f"# {text['title'].format(request_id=request_id)}",
        "",
        text["generated"].format(at=generated_at.strftime("%Y-%m-%d %H:%M")),
        "",
        f"## {text['held']}",
    ]
    lines += [f"- {text[kind]}: {counts.get(kind, 0)}" for kind in _ORDER]
    lines += ["", f"## {text['accesses']}"]
    accesses = [r for r in resources if r["resourceType"] == "AuditEvent"]
    if not accesses:
        lines.append(text["no_access"])
    else:
        times = sorted(r["recorded"] for r in accesses)
        per_actor = Counter(_actor(r) for r in accesses)
        last_of: dict[str, str] = {}
        for r in accesses:
            last_of[_actor(r)] = max(last_of.get(_actor(r), ""), r["recorded"])
        lines.append(
            text["access_count"].format(
                n=len(accesses),
                actors=len(per_actor),
                first=_day(times[0]),
                last=_day(times[-1]),
            )
        )
        lines += [
            "- " + text["by_actor"].format(actor=actor, n=n, last=_day(last_of[actor]))
            for actor, n in sorted(per_actor.items(), key=lambda item: (-item[1], item[0]))
        ]
    lines += ["", f"## {text['kept']}"]
    lines += [f"- {c.code}: {c.basis}" for c in CATEGORIES.values() if not c.erasable]
    lines += ["", text["rights"].format(days=RESPONSE_DAYS)]
    return "\n".join(lines) + "\n"
