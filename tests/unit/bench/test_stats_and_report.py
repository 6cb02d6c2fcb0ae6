"""The benchmark harness's pure helpers: percentiles, targets and report rendering (no timing)."""

from __future__ import annotations

import pytest
from bench import report
from bench.report import format_number, render_markdown
from bench.results import Figure, Section, Target
from bench.stats import Summary, percentile


def test_percentile_interpolates_linearly_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]

    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile(values, 25) == pytest.approx(1.75)


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_reports_median_range_and_quartiles() -> None:
    s = Summary.of([5.0, 1.0, 3.0, 2.0, 4.0])

    assert (s.n, s.median, s.minimum, s.maximum, s.q1, s.q3) == (5, 3.0, 1.0, 5.0, 2.0, 4.0)


def test_figure_status_compares_the_median_with_the_target() -> None:
    fast = Figure("k", "rate", "eval/s", [19_000, 21_000, 22_000], target=Target(">=", 20_000, "x"))
    slow = Figure("k", "p95", "ms", [40.0, 60.0, 70.0], target=Target("<", 50, "x"))
    untargeted = Figure("k", "p50", "ms", [1.0])

    assert fast.status == "PASS"
    assert slow.status == "MISS"
    assert untargeted.status == ""


def test_format_number_keeps_three_significant_figures() -> None:
    assert format_number(20_412.3) == "20,400"
    assert format_number(812.4) == "812"
    assert format_number(1.234) == "1.23"
    assert format_number(0.04567) == "0.0457"
    assert format_number(0) == "0"


def _document(sections: list[Section]) -> dict[str, object]:
    load = {"loadavg": [1.0, 1.0, 1.0], "cpu_busy_percent": 50.0, "pytest_processes": 0}
    return {
        "started_at": "2026-12-03T08:00:00+00:00",
        "seconds": 60.0,
        "options": {"quick": False},
        "machine": {
            "cpu_model": "Test CPU",
            "logical_cpus": 2,
            "physical_cores": 2,
            "ram_gib": 8.0,
            "os": "Linux",
            "python": "CPython 3.11",
            "sqlite": "3.40.1",
            "postgresql": {"server_version": "15.20"},
            "git_commit": "0123456789abcdef",
            "git_branch": "main",
            "git_modified_files": 0,
        },
        "load_before": load,
        "load_after": load,
        "load_during": {"samples": 0},
        "sections_obj": sections,
    }


def test_report_shows_each_figure_with_target_and_verdict() -> None:
    section = Section("cds", "In-process CDS", notes=["one core"])
    section.figures.append(
        Figure(
            "cds.rate",
            "evaluations/s",
            "eval/s",
            [9_000.0, 10_000.0, 11_000.0],
            target=Target(">=", 20_000, "issue 5"),
        )
    )

    text = render_markdown(_document([section]))

    row = "| evaluations/s |  | 10,000 eval/s | 9,000\u201311,000, 3 runs | >= 20,000 (issue 5) |"
    assert row + " **MISS** |" in text
    assert "Test CPU" in text
    assert "- one core" in text
    assert "## Not measured yet" not in text  # every figure the issues ask for is measured


def test_report_lists_figures_not_measured_when_there_are_some(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report, "NOT_MEASURED", ["Something an issue asks for."])

    text = render_markdown(_document([Section("cds", "In-process CDS")]))

    assert "## Not measured yet\n\n- Something an issue asks for." in text


def test_report_names_a_failed_benchmark() -> None:
    text = render_markdown(_document([Section("audit", "Audit", error="RuntimeError('boom')")]))

    assert "**Failed:** `RuntimeError('boom')`" in text
