"""charts.py: server-drawn SVG charts — round axes, nothing to show, one point, large values,
labels escaped, and the accessible name/description every chart carries."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from clinicos.console.charts import (
    MAX_X_LABELS,
    MIN_BAR,
    Series,
    axis_ticks,
    bar_chart,
    line_chart,
    nice_step,
    plain_number,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """The chart must be well-formed XML (an SVG a browser renders as one image)."""
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def bars_of(root: ET.Element) -> list[float]:
    return [float(r.get("width", "0")) for r in root.iter(f"{SVG}rect")]


def bar(**changes: object) -> str:
    args: dict[str, object] = {
        "chart_id": "chart-reasons",
        "title": "Overrides by reason",
        "description": "Bars per reason",
        "bars": [("Benefit outweighs risk", 3), ("Specialist recommendation", 1)],
        "value_axis_label": "Overrides",
        "empty_text": "No overrides in this range.",
    }
    args.update(changes)
    return bar_chart(**args)  # type: ignore[arg-type]


def line(**changes: object) -> str:
    args: dict[str, object] = {
        "chart_id": "chart-trend",
        "title": "Trend",
        "description": "Lines over time",
        "categories": ["1 dic", "2 dic", "3 dic"],
        "series": [Series("Evaluations", [1, 4, 2]), Series("Blocks", [0, 1, 0])],
        "x_axis_label": "Period starting",
        "y_axis_label": "Events",
        "empty_text": "No periods in this range.",
    }
    args.update(changes)
    return line_chart(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "step"),
    [(0.07, 0.1), (0.3, 0.5), (1, 1), (1.2, 2), (3, 5), (7, 10), (250, 500), (1e6, 1e6)],
)
def test_nice_step_when_given_a_raw_step_rounds_up_to_1_2_or_5(raw: float, step: float) -> None:
    assert math.isclose(nice_step(raw), step)


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (5, [0, 2, 4, 6]),
        (10, [0, 5, 10]),
        (1_234_567, [0, 500_000, 1_000_000, 1_500_000]),
    ],
)
def test_axis_ticks_for_counts_are_whole_round_and_reach_the_maximum(
    maximum: float, ticks: list[float]
) -> None:
    assert axis_ticks(maximum) == ticks
    assert axis_ticks(maximum)[-1] >= maximum


def test_axis_ticks_for_fractions_step_below_one() -> None:
    assert axis_ticks(0.3, whole=False) == [0, 0.1, 0.2, 0.3]


def test_bar_chart_is_an_image_named_by_its_title_and_described() -> None:
    root = parse(bar())
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "chart-reasons-title"
    assert root.get("aria-describedby") == "chart-reasons-desc"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and title.get("id") == "chart-reasons-title"
    assert title.text == "Overrides by reason"
    assert desc is not None and desc.get("id") == "chart-reasons-desc"
    assert "Overrides" in texts(root)  # the value axis is named
    assert "style=" not in bar()  # the console's CSP refuses inline styles


def test_bar_chart_scales_bars_to_the_axis_and_writes_each_value() -> None:
    root = parse(bar(bars=[("A", 10), ("B", 5), ("C", 0)]))
    widths = bars_of(root)
    assert widths[0] == pytest.approx(2 * widths[1])
    assert widths[2] == 0
    values = texts(root)
    assert {"10", "5", "0"} <= set(values)


def test_bar_chart_with_no_bars_says_so_in_words() -> None:
    root = parse(bar(bars=[]))
    assert "No overrides in this range." in texts(root)
    assert bars_of(root) == []
    assert root.get("role") == "img"


def test_bar_chart_formats_large_values_with_the_given_formatter() -> None:
    spanish = lambda x: f"{x:,.0f}".replace(",", ".")  # noqa: E731 - es groups by dots
    root = parse(bar(bars=[("A", 1_234_567), ("B", 10)], fmt=spanish))
    assert "1.234.567" in texts(root)
    assert "1.500.000" in texts(root)  # the axis ends on a round number above the largest
    widths = bars_of(root)
    assert widths[1] == MIN_BAR < widths[0]  # 10 of 1.5 million still shows as a bar


def test_labels_and_titles_are_escaped() -> None:
    hostile = '<script>alert("x")</script> & "quotes"'
    svg = bar(title=hostile, description=hostile, bars=[(hostile, 1)])
    assert "<script>" not in svg
    root = parse(svg)  # still well-formed
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == hostile
    svg = line(title=hostile, categories=[hostile], series=[Series(hostile, [1])])
    assert "<script>" not in svg
    parse(svg)


def test_long_labels_are_shortened_on_the_axis_but_kept_whole_in_the_tooltip() -> None:
    label = "A reason with a very long name that would not fit beside its bar"
    root = parse(bar(bars=[(label, 2)]))
    assert not any(t == label for t in texts(root))
    assert any(t.endswith("…") for t in texts(root))
    assert any(label in (t.text or "") for t in root.iter(f"{SVG}title"))


def test_values_that_cannot_be_drawn_are_refused() -> None:
    for value in (-1, math.nan, math.inf):
        with pytest.raises(ValueError):
            bar(bars=[("A", value)])
    with pytest.raises(ValueError):
        bar(chart_id='x" onload="alert(1)')


def test_line_chart_draws_one_line_per_series_told_apart_by_dash_and_marker() -> None:
    root = parse(line())
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 2
    assert lines[0].get("stroke-dasharray") != lines[1].get("stroke-dasharray")
    assert {"Evaluations", "Blocks", "Period starting", "Events"} <= set(texts(root))
    assert root.get("aria-labelledby") == "chart-trend-title"


def test_line_chart_scales_points_to_the_axis() -> None:
    root = parse(line(categories=["a", "b"], series=[Series("S", [0, 4])]))
    points = lines_points(root)
    (x0, y0), (x1, y1) = points[0]
    assert x1 > x0 and y1 < y0  # later and higher
    assert "4" in texts(root)  # the axis reaches the largest value


def lines_points(root: ET.Element) -> list[list[tuple[float, float]]]:
    result = []
    for polyline in root.iter(f"{SVG}polyline"):
        pairs = [p.split(",") for p in (polyline.get("points") or "").split()]
        result.append([(float(x), float(y)) for x, y in pairs])
    return result


def test_line_chart_with_a_single_point_draws_a_marker_and_no_line() -> None:
    root = parse(line(categories=["3 dic"], series=[Series("Evaluations", [5])]))
    assert list(root.iter(f"{SVG}polyline")) == []
    assert len(list(root.iter(f"{SVG}circle"))) == 2  # the point and its legend marker
    assert "3 dic" in texts(root)


def test_line_chart_with_no_categories_says_so_in_words() -> None:
    root = parse(line(categories=[], series=[Series("Evaluations", [])]))
    assert "No periods in this range." in texts(root)


def test_line_chart_of_zeros_still_has_an_axis() -> None:
    root = parse(line(series=[Series("Evaluations", [0, 0, 0])]))
    assert {"0", "1"} <= set(texts(root))


def test_line_chart_writes_at_most_a_few_category_labels() -> None:
    days = [f"d{i}" for i in range(366)]
    root = parse(line(categories=days, series=[Series("S", [i % 5 for i in range(366)])]))
    shown = [t for t in texts(root) if re.fullmatch(r"d\d+", t)]
    assert 2 <= len(shown) <= MAX_X_LABELS
    assert shown[0] == "d0"


def test_line_chart_refuses_series_of_the_wrong_length() -> None:
    with pytest.raises(ValueError):
        line(series=[Series("S", [1, 2])])


def test_plain_number_drops_needless_decimals() -> None:
    assert plain_number(3.0) == "3"
    assert plain_number(2.5) == "2.5"
    assert plain_number(0.125) == "0.12"
