"""Figure 5: bulk FHIR import — resources per second for 1,000 generated patients through
``clinicos fhir import`` (one transaction per patient, every resource audited), one run per
engine (about two minutes each). Leave it out with ``--skip bulk``."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import psutil

from bench.databases import CLINICOS, Database, add_clinician, fresh_database
from bench.options import Options
from bench.results import Figure, Section

PATIENTS = 1000
_REPORT = re.compile(r"imported (\d+) patients \((\d+) resources\)")


def _generate(options: Options, patients: int) -> tuple[str, int]:
    path = options.work_dir / f"fhir-{patients}.json"
    done = subprocess.run(  # noqa: S603 - our own CLI
        [
            str(CLINICOS),
            "fhir",
            "generate",
            "--out",
            str(path),
            "--patients",
            str(patients),
            "--seed",
            "1",
            "--as-of",
            "2026-12-01",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd=options.work_dir,
    )
    match = re.search(r"\((\d+) resources\)", done.stdout)
    return str(path), int(match.group(1)) if match else 0


def _import(db: Database, path: str, email: str) -> tuple[float, int, int, float]:
    """(seconds, patients, resources, peak RSS MB) of one import."""
    peak = 0.0
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [str(CLINICOS), "fhir", "import", path, "--organization", "bench", "--as", email],
        env=db.env(),
        cwd=db.var_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        ps = psutil.Process(process.pid)
        while not stop.wait(0.5):
            try:
                peak = max(peak, ps.memory_info().rss / 2**20)
            except psutil.Error:
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = process.communicate(timeout=1800)
    elapsed = time.perf_counter() - started
    stop.set()
    watcher.join()
    match = _REPORT.search(out)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"fhir import failed ({process.returncode}): {out[-500:]} {err[-1500:]}")
    return elapsed, int(match.group(1)), int(match.group(2)), peak


def run(options: Options) -> Section:
    section = Section("bulk", "Bulk FHIR import")
    patients = options.count(PATIENTS)
    path, generated = _generate(options, patients)
    for engine in options.engines:
        with fresh_database(engine, options, "bulk") as db:
            email, _ = add_clinician(db)
            seconds, imported, resources, peak = _import(db, path, email)
        details = {
            "patients": imported,
            "resources_imported": resources,
            "resources_in_bundle": generated,
            "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak, 1),
        }
        section.figures += [
            Figure(
                f"bulk.fhir_import.rate.{engine}",
                f"FHIR import, {imported:,} patients",
                "resources/s",
                [round(resources / seconds, 1)],
                engine=engine,
                runs_note="1 run",
                details=details,
            ),
            Figure(
                f"bulk.fhir_import.seconds.{engine}",
                f"FHIR import wall time, {imported:,} patients",
                "s",
                [round(seconds, 1)],
                engine=engine,
                runs_note="1 run",
            ),
            Figure(
                f"bulk.fhir_import.rss.{engine}",
                "FHIR import process peak RSS",
                "MB",
                [round(peak, 1)],
                engine=engine,
                runs_note="1 run",
            ),
        ]
    section.notes.append(
        f"`clinicos fhir generate --patients {patients} --seed 1 --as-of 2026-12-01` "
        f"({generated:,} resources in one bundle), then `clinicos fhir import … --organization "
        "bench --as <clinician>` into a fresh database: one transaction per patient, PHI sealed, "
        "one audit entry per resource. Wall time includes process start and parsing. One run "
        "per engine (about 2 minutes each); skip with `--skip bulk`."
    )
    return section
