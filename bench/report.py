"""Render the results as docs/benchmarks.md (for people) and docs/benchmarks.json (for
``bench-smoke`` and later comparisons)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.results import Figure, Section, Target

DASH = "\u2013"  # en dash, for ranges
TIMES = "\u00d7"

ANALYSIS = Path(__file__).with_name("analysis.md")
# Figures an issue asks for that no benchmark measures yet (listed in the report when any).
NOT_MEASURED: list[str] = []


def format_number(value: float) -> str:
    """Three significant figures at most, thousands separated: 20,400 / 812 / 1.23 / 0.0456."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{round(value, -len(str(int(magnitude))) + 3):,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def _spread(figure: Figure) -> str:
    s = figure.summary
    if s.n == 1:
        return figure.runs_note or "1 run"
    text = f"{format_number(s.minimum)}{DASH}{format_number(s.maximum)}"
    if s.n >= 4:
        text += f" (IQR {format_number(s.q1)}{DASH}{format_number(s.q3)})"
    return f"{text}, {s.n} runs"


def _target(figure: Figure) -> str:
    if figure.target is None:
        return ""
    return (
        f"{figure.target.comparison} {format_number(figure.target.value)} ({figure.target.source})"
    )


def _row(figure: Figure) -> str:
    status = {"PASS": "**PASS**", "MISS": "**MISS**"}.get(figure.status, "")
    cells = [
        figure.name,
        figure.engine or "",
        f"{format_number(figure.summary.median)} {figure.unit}",
        _spread(figure),
        _target(figure),
        status,
    ]
    return "| " + " | ".join(cells) + " |"


def _load_text(load: dict[str, Any]) -> str:
    return (
        f"load average {', '.join(str(x) for x in load['loadavg'])}; CPU busy "
        f"{load['cpu_busy_percent']:.0f}% over 3 s; "
        f"other pytest processes: {load['pytest_processes']}"
    )


def _measured_text(measured: dict[str, Any]) -> str:
    load = measured.get("load_during") or {}
    text = (
        f"_Measured {measured.get('started_at')} on clinicos "
        f"`{str(measured.get('git_commit'))[:12]}`"
    )
    if load.get("samples"):
        text += (
            f"; load average (1 min) mean {load['loadavg1_mean']}, another pytest run active in "
            f"{load['share_with_other_pytest']:.0%} of the samples"
        )
    return text + "._"


def _by_kind(kinds: dict[str, dict[str, Any]]) -> str:
    """``chart 41 · search 30 …`` (ms), errors per kind in brackets."""
    parts = []
    for kind, k in kinds.items():
        p95 = DASH if k.get("p95_ms") is None else format_number(k["p95_ms"])
        parts.append(f"{kind} {p95}" + (f" ({k['errors']} err)" if k.get("errors") else ""))
    return " · ".join(parts)


def _soak_lines(soak: dict[str, Any]) -> list[str]:
    """The last ``make soak`` (docs/soak.json), quoted: verdict, checks and the minutes."""
    c = soak["checks"]
    verdict = "**PASS**" if soak["passed"] else "**FAIL** — " + "; ".join(soak["failures"])
    lines = [
        "## Soak (issue 9, `make soak`)",
        "",
        f"_From [soak.json](soak.json), measured {soak['started_at']} on clinicos "
        f"`{str(soak['machine'].get('git_commit'))[:12]}`; load average (1 min) mean "
        f"{soak['load_during'].get('loadavg1_mean')}, another pytest run active in "
        f"{soak['load_during'].get('share_with_other_pytest', 0):.0%} of the samples._",
        "",
        f"- {soak['duration_seconds'] / 60:.0f} minutes of the mixed workload at "
        f"{soak['rate']:g} operations/s ({soak['rate_source']}) on {soak['engine']}, "
        f"{soak['dataset']['patients']:,} patients: {verdict}.",
        f"- {soak['operations']:,} operations, {soak['errors']} errors; RSS idle "
        f"{soak['rss_idle_mb']} MB, end of minute {c['baseline_minute']} {c['rss_baseline_mb']} "
        f"MB, end {c['rss_end_mb']} MB (growth {c['rss_growth_mb']} MB, bound "
        f"{c['rss_growth_bound_mb']:g} MB); p95 minute {c['baseline_minute']} "
        f"{c['p95_baseline_ms']} ms, last minute {c['p95_last_minute_ms']} ms (ratio "
        f"{c['p95_ratio']}, bound {c['p95_ratio_bound']:g}).",
        "",
        "| minute | operations | errors | p50 | p95 | p99 | RSS | server CPU/op |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in soak["minutes"]:
        lines.append(
            f"| {r['minute']} | {r['operations']} | {r['errors']} | {r['p50_ms']} ms | "
            f"{r['p95_ms']} ms | {r['p99_ms']} ms | {r['rss_mb']} MB | "
            f"{r['server_cpu_ms_per_op']} ms |"
        )
    return lines


def render_markdown(
    document: dict[str, Any], analysis: str | None = None, soak: dict[str, Any] | None = None
) -> str:
    m = document["machine"]
    pg = m.get("postgresql") or {}
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`, the harness in `bench/`); do not edit by hand "
        "— the analysis at the end comes from `bench/analysis.md`. Each figure shows the median "
        "over its runs and the spread (min to max, and the interquartile range from 4 runs up); "
        "PASS/MISS compares the median with the issue's target. Raw samples: "
        "[benchmarks.json](benchmarks.json).",
        "",
        "## Machine and run",
        "",
        "| | |",
        "|---|---|",
        f"| date | {document['started_at']} (took {document['seconds'] / 60:.1f} min) |",
        f"| CPU | {m['cpu_model']}, {m['logical_cpus']} logical CPUs "
        f"({m['physical_cores']} cores) |",
        f"| RAM | {m['ram_gib']} GiB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| SQLite | {m['sqlite']} (WAL, synchronous=FULL) |",
        f"| PostgreSQL | {pg.get('server_version', 'not reachable')} on loopback "
        f"(fsync={pg.get('fsync')}, synchronous_commit={pg.get('synchronous_commit')}, "
        f"shared_buffers={pg.get('shared_buffers')}) |",
        f"| clinicos | `{m['git_commit'][:12]}` on {m['git_branch']}"
        + (
            f", with {m['git_modified_files']} uncommitted modified files in the work tree"
            if m["git_modified_files"]
            else ""
        )
        + " |",
        f"| options | {document['options']} |",
        f"| load before | {_load_text(document['load_before'])} |",
        f"| load after | {_load_text(document['load_after'])} |",
    ]
    during = document.get("load_during") or {}
    if during.get("samples"):
        lines.append(
            f"| load during | load average (1 min) mean {during['loadavg1_mean']}, max "
            f"{during['loadavg1_max']}; another pytest run was active in "
            f"{during['share_with_other_pytest']:.0%} of the samples |"
        )
    merged = document.get("merged_from")
    if merged:
        lines.append(
            f"| merged | sections {', '.join(merged['sections'])} were kept from earlier runs on "
            "this machine; each section says when it was measured, on which commit, under what "
            "load |"
        )
    lines += [
        "",
        "The machine has **2 cores**: in the HTTP figures the API server, the database and the "
        "load generator share them, and other engineers' test runs may have competed for them "
        "too (see the load rows above). Figures are for comparison on this box, not capacity "
        "planning.",
        "",
        "## Summary",
        "",
        "| figure | engine | median | spread | target | |",
        "|---|---|---|---|---|---|",
    ]
    for section in document["sections_obj"]:
        if section.figures:
            lines.append(f"| **{section.title}** | | | | | |")
        lines += [_row(f) for f in section.figures]
    for section in document["sections_obj"]:
        lines += ["", f"## {section.title}", ""]
        if section.measured:
            lines += [_measured_text(section.measured), ""]
        if section.error:
            lines += [f"**Failed:** `{section.error}`", ""]
        lines += [f"- {note}" for note in section.notes]
        steps = [f for f in section.figures if "steps" in f.details]
        for figure in steps:
            lines += ["", f"{figure.name} — {figure.engine}, each step:", ""]
            mixed = any("by_kind" in step for step in figure.details["steps"])
            lines += [
                "| offered | achieved | p50 | p95 | p99 | errors | "
                + ("server CPU/op | p95 by kind |" if mixed else "server CPU/req |"),
                "|---|---|---|---|---|---|---|" + ("---|" if mixed else ""),
            ]
            cpu = figure.details.get("server_cpu_ms_per_request", [])
            for i, step in enumerate(figure.details["steps"]):
                errors = step["errors"]
                kinds = ", ".join(f"{k} {TIMES}{v}" for k, v in step["error_kinds"].items())
                lines.append(
                    f"| {step['offered_rate']:.0f} | {step['achieved_rate']:.0f} | "
                    f"{step['p50_ms']:.1f} ms | {step['p95_ms']:.1f} ms | "
                    f"{step['p99_ms']:.1f} ms | "
                    f"{errors}{' (' + kinds + ')' if kinds else ''} | "
                    f"{cpu[i] if i < len(cpu) else ''} ms |"
                    + (f" {_by_kind(step.get('by_kind', {}))} |" if mixed else "")
                )
        lines.append(f"\n_{section.seconds:.0f} s._")
    if soak:
        lines += ["", *_soak_lines(soak)]
    if NOT_MEASURED:
        lines += ["", "## Not measured yet", ""] + [f"- {item}" for item in NOT_MEASURED]
    if analysis:
        lines += ["", analysis.strip()]
    return "\n".join(lines) + "\n"


def write_reports(document: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    sections: list[Section] = document["sections_obj"]
    analysis = ANALYSIS.read_text(encoding="utf-8") if ANALYSIS.exists() else None
    markdown = out_dir / "benchmarks.md"
    soak_path = out_dir / "soak.json"
    soak = json.loads(soak_path.read_text(encoding="utf-8")) if soak_path.exists() else None
    markdown.write_text(render_markdown(document, analysis, soak), encoding="utf-8")
    raw = {k: v for k, v in document.items() if k != "sections_obj"}
    raw["sections"] = [s.as_json() for s in sections]
    data = out_dir / "benchmarks.json"
    data.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return markdown, data


def read_document(path: Path) -> dict[str, Any]:
    """A written benchmarks.json back as the document ``write_reports`` takes (to re-render the
    markdown, e.g. after editing bench/analysis.md, without measuring again)."""
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    sections = []
    for item in raw.pop("sections"):
        section = Section(
            item["name"],
            item["title"],
            notes=item["notes"],
            seconds=item["seconds"],
            error=item["error"],
            measured=item.get("measured") or {},
        )
        for f in item["figures"]:
            target = f["target"]
            section.figures.append(
                Figure(
                    key=f["key"],
                    name=f["name"],
                    unit=f["unit"],
                    samples=f["samples"],
                    engine=f["engine"],
                    runs_note=f.get("runs_note"),
                    details=f["details"],
                    target=None
                    if target is None
                    else Target(target["comparison"], target["value"], target["source"]),
                )
            )
        sections.append(section)
    raw["sections_obj"] = sections
    return raw
