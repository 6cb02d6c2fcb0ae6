"""Every benchmark of ``make bench``, in the order they run. To add one, write a module with
``run(options) -> Section`` and list it here; the report and the JSON pick it up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench import audit, backup, bulk, cds_inprocess, http_cds, kpi, mixed, phi, scale_out
from bench.options import Options
from bench.results import Section


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[Options], Section | list[Section]]
    about: str


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("cds_inprocess", cds_inprocess.run, "CDS engine evaluations/s and latency"),
    Benchmark("phi", phi.run, "PHI field encrypt/decrypt per second"),
    Benchmark("audit", audit.run, "audit chain appends/s and verify rows/s"),
    Benchmark("http_cds", http_cds.run, "CDS evaluate over HTTP, RSS and cold start"),
    Benchmark("bulk", bulk.run, "FHIR import resources/s (1 run per engine, ~2 min each)"),
    Benchmark("kpi", kpi.run, "KPI report at 1,000,000 governance events (~4 min per engine)"),
    Benchmark(
        "mixed",
        mixed.run,
        "mixed clinical workload on 10,000 patients over HTTP (~3-5 min per engine; filling "
        "the dataset cache in var/bench-cache once takes 15-25 min per engine)",
    ),
    Benchmark(
        "backup",
        backup.run,
        "backup create and restore MB/s on the mixed workload's dataset (~2 min per engine)",
    ),
    Benchmark("scale_out", scale_out.run, "CDS evaluate at saturation, 1 vs 2 API processes (PG)"),
)


def select(names: str | None, skip: str | None = None) -> list[Benchmark]:
    """The benchmarks named in a comma-separated list (all when None), less ``skip``."""
    known = {b.name: b for b in BENCHMARKS}
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else list(known)
    skipped = {n.strip() for n in skip.split(",") if n.strip()} if skip else set()
    unknown = [n for n in [*wanted, *skipped] if n not in known]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in wanted if n not in skipped]
