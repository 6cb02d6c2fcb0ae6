"""Charts drawn on the server as inline SVG: pure functions from labelled numbers to markup.

No script and no stylesheet of their own: the console's policy (``style-src 'self'``) refuses
inline styles, so every look is an SVG presentation attribute. Each chart is an image with a
name and a description (``role="img"``, ``<title>``/``<desc>`` referenced by
``aria-labelledby``/``aria-describedby``), axis titles and values written as text; pages put
the same numbers in a data table below it, so a chart never carries numbers alone. Series are
told apart by dash pattern and marker shape as well as colour.

Labels and titles are escaped here; callers format numbers (``fmt``) and dates in the user's
locale before handing them over."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

Format = Callable[[float], str]

WIDTH = 720
FONT = "system-ui, sans-serif"
INK = "#1b1f24"
MUTED = "#4a5360"
GRID = "#c9ced6"
# Colours with at least 3:1 contrast on white (WCAG 1.4.11 non-text contrast), each paired
# with its own dash pattern and marker shape.
PALETTE = ("#0b5cad", "#a4161a", "#1e6b34", "#7a4d00")
DASHES = ("", "8 4", "2 3", "10 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond")
MAX_X_LABELS = 8
MIN_BAR = 2.0  # px: the narrowest bar drawn for a value above zero
_CHART_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Series:
    """One line of a line chart: its name (shown in the legend) and one value per category."""

    name: str
    values: Sequence[float]


def plain_number(value: float) -> str:
    """The default label of a value: an integer without decimals, otherwise up to two."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 times 10^k at or above ``raw``: a step people read at a glance."""
    if not math.isfinite(raw) or raw <= 0:
        return 1.0
    exponent = math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 5.0, 10.0):
        step = multiple * 10.0**exponent
        if step >= raw * (1 - 1e-12):
            return step
    return 10.0 ** (exponent + 1)  # pragma: no cover - 10 times 10^k always qualifies


def axis_ticks(maximum: float, count: int = 4, *, whole: bool = True) -> list[float]:
    """Gridline values from 0 in round steps up to the first at or above ``maximum`` (about
    ``count`` steps; with ``whole``, for counts, never a step below 1). The last tick is the
    axis's end; an axis with nothing to show runs from 0 to 1."""
    if not math.isfinite(maximum) or maximum <= 0:
        return [0.0, 1.0]
    step = nice_step(maximum / count)
    if whole:
        step = max(step, 1.0)
    steps = math.ceil(maximum / step - 1e-9)
    return [round(i * step, 10) for i in range(steps + 1)]


def _check_id(chart_id: str) -> str:
    if not _CHART_ID.fullmatch(chart_id):
        raise ValueError("chart_id must be a letter followed by letters, digits, - or _")
    return chart_id


def _clean(value: float) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("chart values must be finite and not negative")
    return number


def _text(
    x: float,
    y: float,
    content: str,
    *,
    anchor: str = "start",
    size: int = 12,
    fill: str = INK,
    weight: str | None = None,
    extra: str = "",
) -> str:
    bold = f' font-weight="{weight}"' if weight else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'font-family="{FONT}" fill="{fill}"{bold}{extra}>{escape(content)}</text>'
    )


def _open(chart_id: str, title: str, description: str, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]


def _shorten(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    bars: Sequence[tuple[str, float]],
    value_axis_label: str,
    empty_text: str,
    fmt: Format = plain_number,
) -> str:
    """Horizontal bars, one per (label, value), in the order given; each bar's value is written
    at its end and its full label is its tooltip (long labels are shortened on the axis)."""
    _check_id(chart_id)
    values = [(label, _clean(value)) for label, value in bars]
    left, right, top, row, bottom = 230, 90, 12, 30, 52
    if not values:
        height = 90
        parts = _open(chart_id, title, description, height)
        parts.append(_text(WIDTH / 2, 50, empty_text, anchor="middle", size=14, fill=MUTED))
        parts.append("</svg>")
        return "".join(parts)
    height = top + row * len(values) + bottom
    plot_w = WIDTH - left - right
    grid = axis_ticks(max(v for _, v in values))
    axis_max = grid[-1]
    base_y = top + row * len(values)
    parts = _open(chart_id, title, description, height)
    for tick in grid:
        x = left + plot_w * tick / axis_max
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{base_y}" stroke="{GRID}" '
            f'stroke-width="1"/>'
        )
        parts.append(_text(x, base_y + 16, fmt(tick), anchor="middle", fill=MUTED))
    for index, (label, value) in enumerate(values):
        y = top + row * index
        width = plot_w * value / axis_max
        if value > 0:
            width = max(width, MIN_BAR)  # a small count still shows as a bar, never as none
        parts.append("<g>")
        parts.append(f"<title>{escape(label)}: {escape(fmt(value))}</title>")
        parts.append(_text(left - 8, y + row / 2 + 4, _shorten(label, 32), anchor="end"))
        parts.append(
            f'<rect x="{left}" y="{y + 5}" width="{width:.1f}" height="{row - 10}" '
            f'fill="{PALETTE[0]}"/>'
        )
        parts.append(_text(left + width + 6, y + row / 2 + 4, fmt(value), weight="600"))
        parts.append("</g>")
    parts.append(
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base_y}" stroke="{INK}" stroke-width="1"/>'
    )
    parts.append(_text(left + plot_w / 2, height - 10, value_axis_label, anchor="middle"))
    parts.append("</svg>")
    return "".join(parts)


def _marker(shape: str, x: float, y: float, colour: str) -> str:
    if shape == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}"/>'
    if shape == "triangle":
        points = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} {x - 5:.1f},{y + 4:.1f}"
        return f'<polygon points="{points}" fill="{colour}"/>'
    if shape == "diamond":
        points = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}"
        return f'<polygon points="{points}" fill="{colour}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>'


def line_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    categories: Sequence[str],
    series: Sequence[Series],
    x_axis_label: str,
    y_axis_label: str,
    empty_text: str,
    fmt: Format = plain_number,
) -> str:
    """One line per series over the categories (dates, in order), with a marker on every point
    and a legend; at most ``MAX_X_LABELS`` category labels are written, evenly spaced."""
    _check_id(chart_id)
    if len(series) > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} series")
    for one in series:
        if len(one.values) != len(categories):
            raise ValueError("every series needs one value per category")
    cleaned = [[_clean(v) for v in one.values] for one in series]
    if not categories or not series:
        height = 90
        parts = _open(chart_id, title, description, height)
        parts.append(_text(WIDTH / 2, 50, empty_text, anchor="middle", size=14, fill=MUTED))
        parts.append("</svg>")
        return "".join(parts)
    left, right, top, plot_h = 96, 44, 36, 200
    height = top + plot_h + 60
    plot_w = WIDTH - left - right
    base_y = top + plot_h
    grid = axis_ticks(max((v for values in cleaned for v in values), default=0.0))
    axis_max = grid[-1]
    n = len(categories)

    def x_of(i: int) -> float:
        return left + plot_w / 2 if n == 1 else left + plot_w * i / (n - 1)

    def y_of(v: float) -> float:
        return base_y - plot_h * v / axis_max

    parts = _open(chart_id, title, description, height)
    # Legend on top: the marker and dash of each series beside its name.
    legend_x = left
    for index, one in enumerate(series):
        colour, dash, shape = PALETTE[index], DASHES[index], MARKERS[index]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{legend_x}" y1="14" x2="{legend_x + 28}" y2="14" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/>'
        )
        parts.append(_marker(shape, legend_x + 14, 14, colour))
        parts.append(_text(legend_x + 34, 18, one.name))
        legend_x += 44 + 8 * len(one.name)
    for tick in grid:
        y = y_of(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(_text(left - 8, y + 4, fmt(tick), anchor="end", fill=MUTED))
    step = max(1, math.ceil(n / MAX_X_LABELS))
    for i in range(0, n, step):
        parts.append(_text(x_of(i), base_y + 18, categories[i], anchor="middle", fill=MUTED))
    parts.append(
        f'<line x1="{left}" y1="{base_y}" x2="{WIDTH - right}" y2="{base_y}" stroke="{INK}" '
        f'stroke-width="1"/>'
    )
    for index, (one, values) in enumerate(zip(series, cleaned, strict=True)):
        colour, dash, shape = PALETTE[index], DASHES[index], MARKERS[index]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(values))
        parts.append(f"<g><title>{escape(one.name)}</title>")
        if n > 1:
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"'
                f"{dash_attr}/>"
            )
        for i, v in enumerate(values):
            parts.append(_marker(shape, x_of(i), y_of(v), colour))
        parts.append("</g>")
    parts.append(_text(left + plot_w / 2, height - 8, x_axis_label, anchor="middle"))
    parts.append(
        _text(
            16,
            top + plot_h / 2,
            y_axis_label,
            anchor="middle",
            extra=f' transform="rotate(-90 16 {top + plot_h / 2:.1f})"',
        )
    )
    parts.append("</svg>")
    return "".join(parts)
