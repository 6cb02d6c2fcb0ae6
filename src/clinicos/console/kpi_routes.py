"""Console pages: the decision-support KPI dashboard — figures of a range as cards, the override
reasons and the trend drawn as SVG on the server (with their numbers in tables), the events
behind each figure (drill-down) and the API's CSV through the console session.

The figures are governance's ``kpi_report`` (definitions in docs/contexts/governance.md), the
events its ``kpi_events``; the query string carries dates and codes only, never PHI."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_timedelta
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from markupsafe import Markup

from clinicos.cds import override_reasons
from clinicos.console import i18n
from clinicos.console.charts import Series, bar_chart, line_chart
from clinicos.console.session import COOKIE_PATH
from clinicos.console.web import PAGE_HEADERS, Page, page, set_session_cookie
from clinicos.governance import KpiEventPage, KpiReport, kpi_events, kpi_report
from clinicos.identity import Permission
from clinicos.kernel.errors import FieldError, ValidationFailed

router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False)
KPI_PATH = COOKIE_PATH + "/kpi"
DEFAULT_DAYS = 30  # the dashboard opens on the last 30 local days, today included
MAX_PARAM = 40  # as the API's from/to (a date, or a datetime with an offset)
EVENTS_PAGE = 50
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"  # as GET /api/v1/kpi.csv
_SPAN = re.compile(r"at most (\d+) days")
_ReadKpi = Annotated[Page, Depends(page(Permission.kpi_read))]


def metric_labels() -> dict[str, str]:
    """The figures that count events (each has a drill-down), in the current language."""
    _ = i18n.gettext
    return {
        "evaluations": _("Evaluations"),
        "blocks": _("Blocks"),
        "warnings": _("Warnings"),
        "attest_required": _("Attestation required"),
        "attestations": _("Attestations"),
        "overrides": _("Overrides"),
    }


def granularity_labels() -> dict[str, str]:
    _ = i18n.gettext
    return {"day": _("Day"), "week": _("Week"), "month": _("Month")}


def reason_label(code: str) -> str:
    """An override reason as decision support names it, translated; ``unknown`` for overrides
    stored without a reason."""
    if code == "unknown":
        return i18n.gettext("Unknown reason")
    return i18n.gettext(override_reasons([code])[0].display)


@dataclass(frozen=True)
class Figure:
    """One number of the dashboard with the link to the events behind it."""

    key: str
    label: str
    value: int
    href: str


@dataclass(frozen=True)
class RangeForm:
    """The range as the user typed it (kept on errors), or the default last 30 days."""

    start: str
    end: str
    granularity: str

    @classmethod
    def of(cls, query: Mapping[str, str], today: date) -> RangeForm:
        start = query.get("from", "").strip()[:MAX_PARAM]
        end = query.get("to", "").strip()[:MAX_PARAM]
        granularity = query.get("granularity", "").strip()[:10] or "day"
        if not start and not end:
            start = (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat()
            end = today.isoformat()
        return cls(start=start, end=end, granularity=granularity)

    def query(self, **extra: str) -> dict[str, str]:
        return {"from": self.start, "to": self.end, "granularity": self.granularity, **extra}


def _today(p: Page) -> date:
    """Today in the clinic's calendar (the container's clock, so tests can fix it)."""
    now: datetime = p.container.clock.now()
    return now.astimezone(ZoneInfo(p.formatter.timezone)).date()


def field_errors(exc: ValidationFailed) -> dict[str, str]:
    """The service's errors by parameter name (``query.from`` → ``from``), in plain words."""
    errors: dict[str, str] = {}
    for error in exc.errors:
        name = str(error.loc[-1]) if error.loc else "form"
        errors.setdefault(name, _message(name, error))
    if not errors:
        errors["form"] = i18n.gettext("These figures could not be computed for this range.")
    return errors


def _message(name: str, error: FieldError) -> str:
    _ = i18n.gettext
    text = error.message
    if name == "granularity":
        return _("Choose day, week or month.")
    if name == "kind":
        return _("Choose one of the figures.")
    if name in ("reason", "before"):
        return _("This link is not valid. Start again from the dashboard.")
    if text.startswith("is required"):
        return _("Enter a date.")
    if text.startswith(("is not a date", "needs a UTC offset")):
        return _("Enter a date as YYYY-MM-DD.")
    if text.startswith("is out of range"):
        return _("This date is out of range.")
    if text.startswith("must be after"):
        return _("The end date must not be before the start date.")
    span = _SPAN.search(text)
    if span is not None:
        return _("The range may span at most %(days)s days at this grouping.", days=span.group(1))
    return text


# -- the dashboard ---------------------------------------------------------------------------


@router.get("/kpi")
async def dashboard(p: _ReadKpi) -> Response:
    form = RangeForm.of(p.request.query_params, _today(p))
    try:
        report = await _report(p, form)
    except ValidationFailed as exc:
        return _dashboard(p, form, None, field_errors(exc), status=422)
    return _dashboard(p, form, report, {})


@router.get("/kpi.csv")
async def download_csv(p: _ReadKpi) -> Response:
    """The same CSV as GET /api/v1/kpi.csv (scope, metric, key, value) for the same range."""
    form = RangeForm.of(p.request.query_params, _today(p))
    try:
        report = await _report(p, form)
    except ValidationFailed as exc:
        return _dashboard(p, form, None, field_errors(exc), status=422)
    name = f"clinicos-kpi-{report.range.start:%Y%m%d}-{report.range.end:%Y%m%d}.csv"
    response = Response(
        content=report.as_csv(),
        media_type=CSV_MEDIA_TYPE,
        headers={**PAGE_HEADERS, "content-disposition": f'attachment; filename="{name}"'},
    )
    set_session_cookie(p.request, response, p.session)
    return response


async def _report(p: Page, form: RangeForm) -> KpiReport:
    return await kpi_report(
        uows=p.container.uow,
        actor=p.actor,
        raw_from=form.start,
        raw_to=form.end,
        granularity=form.granularity,
    )


def _dashboard(
    p: Page,
    form: RangeForm,
    report: KpiReport | None,
    errors: dict[str, str],
    *,
    status: int = 200,
) -> Response:
    values: dict[str, Any] = {}
    if report is not None:
        values = _figures(p, form, report)
    return p.render(
        "kpi/dashboard.html",
        status=status,
        form=form,
        errors=errors,
        report=report,
        granularities=granularity_labels(),
        **values,
    )


def _figures(p: Page, form: RangeForm, report: KpiReport) -> dict[str, Any]:
    _ = i18n.gettext
    fmt = p.formatter
    totals = report.totals
    labels = metric_labels()
    cards = [
        Figure(metric, label, getattr(totals, metric), _events_href(form, kind=metric))
        for metric, label in labels.items()
    ]
    reasons = [
        Figure(code, reason_label(code), n, _events_href(form, kind="overrides", reason=code))
        for code, n in sorted(report.overrides_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    reasons_chart = bar_chart(
        chart_id="chart-reasons",
        title=_("Overrides by reason"),
        description=_(
            "Horizontal bars: the number of overrides recorded for each reason from %(start)s "
            "to %(end)s. The same numbers are in the table below.",
            start=fmt.day(report.range.start),
            end=fmt.day(report.range.end - timedelta(microseconds=1)),
        ),
        bars=[(r.label, r.value) for r in reasons],
        value_axis_label=_("Overrides"),
        empty_text=_("No overrides in this range."),
        fmt=lambda x: fmt.number(x, 0),
    )
    unit = granularity_labels().get(report.range.granularity, report.range.granularity)
    buckets = [fmt.day(bucket.start) for bucket in report.series]
    trend_chart = line_chart(
        chart_id="chart-trend",
        title=_("Evaluations, blocks and overrides by %(unit)s", unit=unit.lower()),
        description=_(
            "Lines over time: evaluations, blocks and overrides in each period from %(start)s "
            "to %(end)s. The same numbers are in the table below.",
            start=buckets[0] if buckets else "",
            end=buckets[-1] if buckets else "",
        ),
        categories=buckets,
        series=[
            Series(labels[name], [getattr(b.counts, name) for b in report.series])
            for name in ("evaluations", "blocks", "overrides")
        ],
        x_axis_label=_("Period starting"),
        y_axis_label=_("Events"),
        empty_text=_("No periods in this range."),
        fmt=lambda x: fmt.number(x, 0),
    )
    median = report.median_block_resolution_seconds
    return {
        "cards": cards,
        "reasons": reasons,
        "reasons_chart": Markup(reasons_chart),  # noqa: S704 - built by charts.py, which escapes
        "trend_chart": Markup(trend_chart),  # noqa: S704 - built by charts.py, which escapes
        "by_drug": sorted(report.overrides_by_drug.items(), key=lambda kv: (-kv[1], kv[0])),
        "by_rule": sorted(report.overrides_by_rule.items(), key=lambda kv: (-kv[1], kv[0])),
        "series_fields": list(labels.items()),
        "median_resolution": (
            None
            if median is None
            else format_timedelta(timedelta(seconds=median), locale=fmt.locale)
        ),
        "range_end": report.range.end - timedelta(microseconds=1),
        "csv_href": KPI_PATH + ".csv?" + urlencode(form.query()),
    }


def _events_href(form: RangeForm, **extra: str) -> str:
    return KPI_PATH + "/events?" + urlencode(form.query(**extra))


# -- drill-down ------------------------------------------------------------------------------


@router.get("/kpi/events")
async def events(p: _ReadKpi) -> Response:
    """The events behind one figure of the dashboard, newest first, paged."""
    query = p.request.query_params
    form = RangeForm.of(query, _today(p))
    metric = query.get("kind", "").strip()[:32]
    reason = query.get("reason", "").strip()[:64] or None
    before = query.get("before", "").strip()[:80] or None
    try:
        found = await kpi_events(
            uows=p.container.uow,
            actor=p.actor,
            metric=metric,
            raw_from=form.start,
            raw_to=form.end,
            reason_code=reason,
            limit=EVENTS_PAGE,
            before=before,
        )
    except ValidationFailed as exc:
        return _events(p, form, metric, reason, None, field_errors(exc), status=422)
    return _events(p, form, metric, reason, found, {})


def _events(
    p: Page,
    form: RangeForm,
    metric: str,
    reason: str | None,
    found: KpiEventPage | None,
    errors: dict[str, str],
    *,
    status: int = 200,
) -> Response:
    _ = i18n.gettext
    labels = metric_labels()
    extra = {"kind": metric, **({"reason": reason} if reason else {})}
    next_href = None
    if found is not None and found.next_before is not None:
        next_href = _events_href(form, **extra, before=found.next_before)
    return p.render(
        "kpi/events.html",
        status=status,
        form=form,
        metric=metric,
        metric_label=labels.get(metric, metric),
        metrics=labels,
        reason=reason,
        reason_label=reason_label(reason) if reason else None,
        found=found,
        errors=errors,
        kinds={
            "evaluation": _("Evaluation"),
            "override": _("Override"),
            "attestation": _("Attestation"),
            "cosign": _("Co-signature"),
        },
        reason_labels={code: reason_label(code) for code in _reason_codes(found)},
        range_end=(found.range.end - timedelta(microseconds=1)) if found else None,
        first_href=_events_href(form, **extra),
        paged="before" in p.request.query_params,
        next_href=next_href,
        dashboard_href=KPI_PATH + "?" + urlencode(form.query()),
    )


def _reason_codes(found: KpiEventPage | None) -> set[str]:
    if found is None:
        return set()
    return {item.reason_code for item in found.items if item.reason_code}
