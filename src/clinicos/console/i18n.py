"""Languages of the console: message catalogs (gettext .po files read at start, no build step)
and locale negotiation. Formatting of dates, numbers and money lives in ``formatting``.

Catalogs are split by area (``locales/<lang>/<area>.po``) so pages can be added without
touching one shared file; every area is merged into one catalog per language at import."""

from __future__ import annotations

import contextvars
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.pofile import read_po

LANGUAGES: dict[str, str] = {"en": "English", "es": "Español", "pt": "Português"}
DEFAULT_LANGUAGE = "en"
LOCALES_DIR = Path(__file__).parent / "locales"

_current: contextvars.ContextVar[str] = contextvars.ContextVar(
    "console_language", default=DEFAULT_LANGUAGE
)


def _load(lang: str) -> dict[str, str]:
    messages: dict[str, str] = {}
    for path in sorted((LOCALES_DIR / lang).glob("*.po")):
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=lang)
        for message in catalog:
            if not message.id or not message.string or message.fuzzy:
                continue
            if isinstance(message.id, tuple):  # msgid + msgid_plural (es, pt: one and other)
                forms = tuple(message.string)
                if forms and all(forms):
                    messages[message.id[0]] = str(forms[0])
                    messages[message.id[1]] = str(forms[-1])
            elif isinstance(message.id, str):
                messages[message.id] = str(message.string)
    return messages


CATALOGS: dict[str, dict[str, str]] = {lang: _load(lang) for lang in LANGUAGES if lang != "en"}


def use_language(lang: str) -> contextvars.Token[str]:
    return _current.set(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)


def current_language() -> str:
    return _current.get()


def gettext(message: str, **variables: object) -> str:
    """The message in the current language (English when a translation is missing), with
    ``%(name)s`` variables filled in."""
    text = CATALOGS.get(_current.get(), {}).get(message, message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form (English rule, which es and pt share: one, other), in the
    current language, NOT yet formatted: Jinja's newstyle gettext fills in ``num`` and every
    other variable itself."""
    chosen = singular if n == 1 else plural
    return CATALOGS.get(_current.get(), {}).get(chosen, chosen)


def negotiate(accept_language: str | None, override: str | None) -> str:
    """The user's explicit choice first, then the browser's preference, then English."""
    if override in LANGUAGES:
        return str(override)
    for tag in _accept_language_tags(accept_language or ""):
        try:
            language = Locale.parse(tag, sep="-").language
        except (ValueError, UnknownLocaleError):
            continue
        if language in LANGUAGES:
            return language
    return DEFAULT_LANGUAGE


def _accept_language_tags(header: str) -> list[str]:
    """RFC 9110 §12.5.4: tags by descending q (ties keep their order); q=0 means not wanted."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]
