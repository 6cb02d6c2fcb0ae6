"""Every message of the KPI and audit pages (templates and routes) is translated into Spanish
and Portuguese, with the same %(name)s placeholders, in the catalogs the console loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from clinicos.cds import override_reasons
from clinicos.config import DEFAULT_OVERRIDE_REASON_CODES
from clinicos.console import i18n

CONSOLE = Path(i18n.__file__).parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def messages(area: str) -> set[str]:
    """The msgids of an area's templates (Jinja's extractor) and routes module."""
    found: set[str] = set()
    sources = [
        (path, "jinja2.ext:babel_extract", {"extensions": "jinja2.ext.i18n"})
        for path in sorted((CONSOLE / "templates" / area).glob("*.html"))
    ]
    sources.append((CONSOLE / f"{area}_routes.py", "python", {}))
    for path, method, options in sources:
        for _, message, _, _ in extract_from_file(
            method, str(path), keywords=KEYWORDS, options=options
        ):
            found.update(m for m in (message if isinstance(message, tuple) else (message,)) if m)
    return found


@pytest.mark.parametrize("area", ["kpi", "audit"])
def test_every_message_of_the_area_is_in_its_own_catalogs(area: str) -> None:
    ids = messages(area)
    assert len(ids) > 40, "the extractor found suspiciously few messages"
    for lang in ("es", "pt"):
        with (CONSOLE / "locales" / lang / f"{area}.po").open("rb") as handle:
            catalog = read_po(handle, locale=lang)
        translated = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
        assert sorted(ids - set(translated)) == [], lang


@pytest.mark.parametrize("lang", ["es", "pt"])
def test_translations_keep_their_placeholders(lang: str) -> None:
    merged = i18n.CATALOGS[lang]
    for message in messages("kpi") | messages("audit"):
        assert message in merged, (lang, message)
        assert sorted(PLACEHOLDER.findall(merged[message])) == sorted(
            PLACEHOLDER.findall(message)
        ), (lang, message)


@pytest.mark.parametrize("lang", ["es", "pt"])
def test_override_reasons_on_the_dashboard_are_translated(lang: str) -> None:
    for reason in override_reasons(DEFAULT_OVERRIDE_REASON_CODES):
        assert reason.display in i18n.CATALOGS[lang], (lang, reason.code)
