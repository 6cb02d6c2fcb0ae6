"""The console speaks Spanish and Portuguese everywhere it speaks English: every message the
templates and the console's Python code mark for translation has an es and a pt translation,
the per-area catalogs never translate one message two ways (they merge into one catalog), and
the ``%(name)s`` placeholders survive translation."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from clinicos.console import i18n

CONSOLE = Path(i18n.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def used_messages() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(CONSOLE),
        method_map=[("**/templates/**.html", "jinja2"), ("**.py", "python")],
        keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
        options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
    ):
        found.update(message if isinstance(message, tuple) else (message,))
    return {m for m in found if m}


def test_extraction_finds_the_console_messages() -> None:
    used = used_messages()
    assert {"Sign in", "Skip to content", "Patients"} <= used
    assert len(used) > 100


def test_every_console_message_is_translated_to_spanish_and_portuguese() -> None:
    used = used_messages()
    for lang in ("es", "pt"):
        missing = sorted(m for m in used if m not in i18n.CATALOGS[lang])
        assert missing == [], f"{lang}: {len(missing)} untranslated, e.g. {missing[:5]}"


def test_areas_never_translate_one_message_two_ways() -> None:
    for lang in ("es", "pt"):
        seen: dict[str, dict[str, str]] = defaultdict(dict)
        for path in sorted((CONSOLE / "locales" / lang).glob("*.po")):
            with path.open("rb") as handle:
                for message in read_po(handle, locale=lang):
                    if isinstance(message.id, str) and message.id and message.string:
                        seen[message.id][path.name] = str(message.string)
        clashes = {m: t for m, t in seen.items() if len(set(t.values())) > 1}
        assert clashes == {}, f"{lang}: {list(clashes.items())[:3]}"


def test_placeholders_survive_translation() -> None:
    for lang in ("es", "pt"):
        for message, translated in i18n.CATALOGS[lang].items():
            assert set(PLACEHOLDER.findall(message)) == set(PLACEHOLDER.findall(translated)), (
                lang,
                message,
            )


def test_plural_messages_fill_every_placeholder_in_templates() -> None:
    from clinicos.console.web import templates

    template = templates.from_string(
        '{{ ngettext("%(num)s patient in %(clinic)s", "%(num)s patients in %(clinic)s", n,'
        " clinic=c) }}"
    )
    assert template.render(n=1, c="El Alto") == "1 patient in El Alto"
    assert template.render(n=3, c="El Alto") == "3 patients in El Alto"
    token = i18n.use_language("es")
    try:
        assert templates.from_string('{{ _("Sign in") }}').render() == "Ingresar"
    finally:
        i18n._current.reset(token)
