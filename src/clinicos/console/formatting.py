"""Dates, numbers and money as the organization's locale writes them (CLDR data via Babel), in
the organization's timezone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent


@dataclass(frozen=True)
class Formatter:
    locale: str  # e.g. "es_BO"
    timezone: str
    currency: str

    @classmethod
    def for_organization(cls, locale: str, timezone: str, currency: str) -> Formatter:
        try:
            parsed = str(Locale.parse(locale.replace("-", "_")))
        except (ValueError, UnknownLocaleError):
            parsed = "en"
        return cls(locale=parsed, timezone=timezone, currency=currency)

    def moment(self, value: datetime | None) -> str:
        """A date and time, in the organization's timezone."""
        if value is None:
            return "—"
        return format_datetime(
            value, format="medium", tzinfo=ZoneInfo(self.timezone), locale=self.locale
        )

    def day(self, value: date | datetime | None) -> str:
        """A calendar date (an instant is first placed in the organization's timezone)."""
        if value is None:
            return "—"
        if isinstance(value, datetime):
            value = value.astimezone(ZoneInfo(self.timezone)).date()
        return format_date(value, format="medium", locale=self.locale)

    def number(self, value: float | int | Decimal | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        pattern = "#,##0" + ("." + "#" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def percent(self, value: float | None) -> str:
        if value is None:
            return "—"
        return format_percent(value, format="#,##0.0%", locale=self.locale)

    def money(self, value: float | Decimal, currency: str | None = None) -> str:
        return format_currency(value, currency or self.currency, locale=self.locale)
