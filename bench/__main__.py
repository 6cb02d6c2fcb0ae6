"""``python -m bench``: run the benchmarks and write docs/benchmarks.md and docs/benchmarks.json.

Options also come from the environment (the Makefile passes them through):
``CLINICOS_BENCH_ONLY``, ``CLINICOS_BENCH_SKIP``, ``CLINICOS_BENCH_ENGINES``,
``CLINICOS_BENCH_QUICK=1``, ``CLINICOS_BENCH_POSTGRES_URL``, ``CLINICOS_BENCH_OUT``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.machine import LoadMonitor, describe_machine, sample_load
from bench.options import ENGINES, REPOSITORY, Options
from bench.registry import BENCHMARKS, select
from bench.report import read_document, write_reports
from bench.results import Section


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    listing = "; ".join(f"{b.name}: {b.about}" for b in BENCHMARKS)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        default=env("CLINICOS_BENCH_ONLY"),
        help=f"comma-separated benchmarks to run (default all). {listing}",
    )
    parser.add_argument(
        "--skip",
        default=env("CLINICOS_BENCH_SKIP"),
        help="comma-separated benchmarks to leave out (e.g. bulk)",
    )
    parser.add_argument(
        "--engines",
        default=env("CLINICOS_BENCH_ENGINES", ",".join(ENGINES)),
        help="sqlite,postgresql (default both)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=env("CLINICOS_BENCH_QUICK") == "1",
        help="short runs to try the harness; never publish these",
    )
    parser.add_argument(
        "--postgres-url",
        default=env("CLINICOS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a server where this user may create and drop databases",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(env("CLINICOS_BENCH_OUT", str(REPOSITORY / "docs"))),
        help="where the reports go (default docs/)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other benchmarks' sections of the existing benchmarks.json in --out",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: re-render benchmarks.md from the benchmarks.json in --out",
    )
    parser.add_argument(
        "--keep-work-dir", action="store_true", help="keep the databases and server logs of the run"
    )
    return parser


def _merge(document: dict[str, Any], previous: dict[str, Any]) -> None:
    """Sections measured now replace their namesakes in the previous report (same place); the
    others are kept, and the report says which were measured in the earlier run."""
    fresh = {s.name: s for s in document["sections_obj"]}
    previous_sections: list[Section] = previous["sections_obj"]
    merged = [fresh.pop(s.name, s) for s in previous_sections]
    merged += fresh.values()
    document["sections_obj"] = merged
    document["merged_from"] = {"sections": sorted(s.name for s in previous_sections if s in merged)}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in logs
    if args.render_only:
        markdown, _ = write_reports(read_document(args.out / "benchmarks.json"), args.out)
        print(f"bench: rendered {markdown}")
        return 0
    try:
        chosen = select(args.only, args.skip)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    work_dir = Path(tempfile.mkdtemp(prefix="clinicos-bench-"))
    options = Options(
        work_dir=work_dir, engines=engines, postgres_admin_url=args.postgres_url, quick=args.quick
    )
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"bench: {', '.join(b.name for b in chosen)} on {', '.join(engines)}; work in {work_dir}")
    machine = describe_machine(args.postgres_url)  # the code checked out when the run starts
    load_before = sample_load()
    sections: list[Section] = []
    with LoadMonitor() as monitor:
        for benchmark in chosen:
            print(f"bench: {benchmark.name} …", flush=True)
            t0 = time.monotonic()
            try:
                produced = benchmark.run(options)
                produced_list = produced if isinstance(produced, list) else [produced]
            except Exception as exc:  # one failed benchmark must not lose the others
                traceback.print_exc()
                produced_list = [Section(benchmark.name, benchmark.name, error=repr(exc))]
            elapsed = time.monotonic() - t0
            for section in produced_list:
                section.seconds = elapsed / len(produced_list)
                for figure in section.figures:
                    s = figure.summary
                    print(f"  {figure.key}: median {s.median:g} {figure.unit} {figure.status}")
            sections += produced_list
    for section in sections:
        section.measured = {
            "started_at": started_at,
            "git_commit": machine["git_commit"],
            "git_modified_files": machine["git_modified_files"],
            "load_during": monitor.summary(),
        }
    document = {
        "started_at": started_at,
        "seconds": time.monotonic() - started,
        "options": {
            "benchmarks": [b.name for b in chosen],
            "engines": list(engines),
            "quick": options.quick,
        },
        "machine": machine,
        "load_before": load_before,
        "load_after": sample_load(),
        "load_during": monitor.summary(),
        "sections_obj": sections,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    existing = args.out / "benchmarks.json"
    if args.merge and existing.exists():
        _merge(document, read_document(existing))
    markdown, data = write_reports(document, args.out)
    if not args.keep_work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    failed = [s.name for s in sections if s.error]
    print(f"bench: wrote {markdown} and {data} in {(time.monotonic() - started) / 60:.1f} min")
    if failed:
        print(f"bench: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
