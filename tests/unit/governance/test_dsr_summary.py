"""The access report's readable summary: counts what the Bundle holds per category, the accesses
per actor, what is kept and why — in en, es or pt — and never the data itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from clinicos.governance.dsr.summary import MESSAGES, summarize

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def _access(actor: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "recorded": when,
        "agent": [{"who": {"identifier": {"value": actor}}, "requestor": True}],
    }


BUNDLE = {
    "entry": [
        {"resource": r}
        for r in (
            {"resourceType": "Patient", "name": [{"family": "Quispe Mamani"}]},
            {"resourceType": "Observation"},
            {"resourceType": "Observation"},
            {"resourceType": "Consent"},
            _access("user-a", "2026-11-02T10:00:00Z"),
            _access("user-b", "2026-11-20T10:00:00Z"),
            _access("user-a", "2026-12-01T10:00:00Z"),
        )
    ]
}


def test_summary_when_bundle_has_entries_counts_them_by_category_and_accesses_by_actor() -> None:
    text = summarize(BUNDLE, language="en", request_id="req-1", generated_at=AT)

    assert text.startswith("# Access report for data-subject request req-1\n")
    assert "- Measurements and test results: 2\n" in text
    assert "- Identification and contact details: 1\n" in text
    assert "- Clinical notes: 0\n" in text
    assert "3 recorded accesses by 2 people or systems, from 2026-11-02 to 2026-12-01." in text
    assert text.index("- user-a: 2 (last on 2026-12-01)") < text.index("- user-b: 1")
    assert "Lei 13.787/2018" in text
    assert "Quispe" not in text


def test_summary_when_no_access_recorded_says_so() -> None:
    bundle = {"entry": [{"resource": {"resourceType": "Patient"}}]}

    text = summarize(bundle, language="pt", request_id="r", generated_at=AT)

    assert "Nenhum acesso ao seu prontuário está registrado." in text


@pytest.mark.parametrize("language", ["en", "es", "pt"])
def test_messages_when_any_language_has_every_key_of_english(language: str) -> None:
    assert set(MESSAGES[language]) == set(MESSAGES["en"])
    text = summarize(BUNDLE, language=language, request_id="r", generated_at=AT)
    assert MESSAGES[language]["held"] in text and "15" in text
