"""Issue 8's headline figure: a mixed clinical workload over HTTP against a real server process
on a dataset of 10,000 patients, at increasing constant rates until p95 passes 200 ms; the
figure is the highest rate held with p95 < 100 ms and no error (target ≥ 600/s on PostgreSQL).

The mix (operations, each picked for a patient drawn at random over the whole dataset):

- **open chart 50%** — ``GET /api/v1/patients/{id}`` then ``GET …/observations?limit=100`` on
  the same connection (what an API client does to open a chart: demographics and the latest
  results); its latency runs to the second answer. There is no JSON chart endpoint; the
  console's HTML chart page makes five more audited reads (conditions, allergies, medication
  list, prescriptions, notes).
- **search 15%** — ``POST /api/v1/patients/search`` (criteria in the body): 40% by MRN, 40% by
  full name, 20% by family name (two surnames; a handful of matches, one audit entry each).
- **CDS evaluate 20%** — ``POST /api/v1/cds/evaluate`` in record mode (``patient_id``): reads
  the record, evaluates, persists the evaluation, governance event and audit entry.
- **record observation 10%** — ``POST …/observations`` (weight, blood pressure panel, heart rate
  or serum creatinine, measured minutes ago).
- **write note 5%** — ``POST …/notes`` (a draft progress note, ~600 characters of PHI).

The dataset is written through records' own use cases in process (``add_patient``,
``add_observation``, ``add_condition``, ``add_medication_statement``: PHI sealed, blind indexes,
one audit entry and one outbox event per row, exactly as the API writes them), 100 patients per
transaction. It is cached in ``var/bench-cache/`` (a SQLite file; a PostgreSQL template
database ``clinicos_bench_mixed_<key>``) keyed by the dataset version, its size and a hash of
``migrations/``; a run copies it. Delete the cache (``rm -r var/bench-cache`` and ``DROP
DATABASE clinicos_bench_mixed_…``) to measure seeding again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.databases import Database, _pg_url, add_clinician
from bench.http_load import Measured, constant_rate, step_until
from bench.loadgen import Operation, build_request, weighted_mix
from bench.options import REPOSITORY, Options
from bench.results import Figure, Section, Target
from bench.server import HOST, RssSampler, Server

DATASET_VERSION = 1  # bump when the generator below changes
PATIENTS = 10_000
BATCH = 100  # patients per seeding transaction
SEED = 8
CACHE = REPOSITORY / "var" / "bench-cache"
MIX: tuple[tuple[str, float], ...] = (
    ("chart", 0.50),
    ("search", 0.15),
    ("cds", 0.20),
    ("observation", 0.10),
    ("note", 0.05),
)
KINDS = [kind for kind, _ in MIX]
P95_LIMIT_MS = 100.0
STOP_P95_MS = 200.0
TARGET = Target(">=", 600, "issue 8")
WARMUP_SECONDS = 10.0
STEP_SECONDS = 20.0
RATES = [5.0, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 150, 200, 300, 400, 600, 800]
LOWER_RATES = [4.0, 3, 2, 1]  # when not even 5/s is held: what is?
MIX_LENGTH = 20_000  # pre-built operations a run cycles through


def _words(text: str) -> list[str]:
    return text.split()


_GIVEN = {
    "female": _words(
        "Ana Rosa María Juana Elena Lucía Carmen Sonia Beatriz Camila Francisca Juliana "
        "Adriana Patricia Gabriela Daniela Valeria Paola Fernanda Luisa Isabel Teresa "
        "Verónica Silvia Marta Claudia"
    ),
    "male": _words(
        "Juan Luis Carlos Mario Jorge Víctor Álvaro René José João Antônio Francisco "
        "Paulo Lucas Pedro Miguel Andrés Diego Raúl Fernando Ricardo Sergio Hugo Óscar "
        "Rodrigo Marcelo"
    ),
}
_FAMILY = _words(
    "Quispe Mamani Condori Choque Flores Vargas Apaza Huanca Silva Santos Oliveira "
    "Souza Pereira Lima Costa Ferreira Rodrigues Almeida Gutiérrez Rojas Fernández "
    "López Mendoza Torrez Ramírez Cruz Ríos Gonzales Rocha Castro Navarro Salazar "
    "Cárdenas Aguilar Medina Ortiz Villca Ticona Limachi Colque Alanoca Callisaya "
    "Carvalho Gomes Ribeiro Martins Araújo Barbosa Moreira Cavalcanti Dias Teixeira "
    "Nunes Moura Campos Cardoso Freitas Pinto Monteiro Vieira"
)
# (ICD-10, SNOMED, display, prevalence) and (RxCUI, name, dose mg, frequency): the synthetic
# generator's, so record mode recognises them (atrial fibrillation, CKD, the DOACs).
_CONDITIONS = [
    ("I10", "38341003", "Essential hypertension", 0.45),
    ("E11.9", "44054006", "Type 2 diabetes mellitus", 0.2),
    ("I48.91", "49436004", "Atrial fibrillation", 0.3),
    ("I82.40", "128053003", "Deep vein thrombosis", 0.06),
    ("N18.3", "433144002", "Chronic kidney disease stage 3", 0.1),
]
_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_ANTICOAGULANTS = [
    ("1364430", "apixaban", "5", "BID"),
    ("1114195", "rivaroxaban", "20", "QD"),
    ("1546356", "dabigatran", "150", "BID"),
    ("11289", "warfarin", "5", "QD"),
]
_OTHER_DRUGS = [
    ("6809", "metformin", "850", "BID"),
    ("17767", "amlodipine", "5", "QD"),
    ("83367", "atorvastatin", "20", "QD"),
]
_ORDERS = [
    ("apixaban", "5", "BID", "nvaf"),
    ("apixaban", "2.5", "BID", "nvaf"),
    ("rivaroxaban", "20", "QD", "nvaf"),
    ("rivaroxaban", "15", "QD", "nvaf"),
    ("dabigatran", "150", "BID", "nvaf"),
    ("dabigatran", "110", "BID", "nvaf"),
    ("edoxaban", "60", "QD", "nvaf"),
    ("rivaroxaban", "15", "BID", "vte_treatment"),
    ("apixaban", "10", "BID", "vte_treatment"),
]
_NOTE = (
    "Seen in anticoagulation clinic. Reports no bleeding, no bruising, no melena. Adherent to "
    "the current regimen per patient and pill count. Blood pressure reviewed; renal function "
    "from the latest creatinine reviewed against the dosing thresholds. Diet and alcohol "
    "discussed. Falls risk assessed: walks unaided, no falls in the last six months. Plan: "
    "continue current dose, repeat creatinine and weight before the next review, return earlier "
    "if bleeding, dark stools or new medications. Patient understands and agrees with the plan."
)


# -- the dataset --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientRef:
    id: str
    mrn: str
    given: str
    family: str


@dataclass
class Dataset:
    """What a run needs to know about a seeded database (kept beside the cached copy)."""

    patients: int
    email: str
    password: str
    refs: list[PatientRef]
    seed_seconds: float
    rows: dict[str, int]
    key: str
    cached: bool = False
    copy_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> str:
        data = asdict(self)
        data["refs"] = [[r.id, r.mrn, r.given, r.family] for r in self.refs]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Dataset:
        data = json.loads(text)
        data["refs"] = [PatientRef(*r) for r in data["refs"]]
        return cls(**data)

    def summary(self) -> dict[str, Any]:
        return {
            "patients": self.patients,
            "rows": self.rows,
            "seed_seconds": round(self.seed_seconds, 1),
            "cached": self.cached,
            "copy_seconds": round(self.copy_seconds, 1),
            "key": self.key,
        } | self.extra


def dataset_key(patients: int) -> str:
    """Changes with the generator's version, the size and the schema (every migration file)."""
    digest = hashlib.sha256(f"{DATASET_VERSION}:{patients}:{SEED}".encode())
    for path in sorted((REPOSITORY / "migrations").rglob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _patient_values(rng: random.Random, index: int, today: date) -> Any:
    from clinicos.records.services.patients import Address, PatientFields

    sex = rng.choice(("female", "male"))
    age = min(98, max(18, int(rng.gauss(68, 13))))
    born = today - timedelta(days=age * 365 + rng.randrange(365))
    given = rng.choice(_GIVEN[sex])
    family = f"{rng.choice(_FAMILY)} {rng.choice(_FAMILY)}"
    return PatientFields(
        mrn=f"MX{index:06d}",
        family_name=family,
        given_name=given,
        sex=sex,
        birth_date=born,
        national_id=f"{rng.randrange(1_000_000, 99_999_999)}",
        phone=f"+591 7{rng.randrange(1_000_000, 9_999_999)}",
        email=f"patient{index}@example.com",
        address=Address(
            lines=(f"Calle {rng.randrange(1, 90)} N° {rng.randrange(1, 3000)}",),
            city=rng.choice(("La Paz", "El Alto", "Santa Cruz de la Sierra", "Cochabamba")),
            country="BO",
        ),
        preferred_language="es",
    )


def _observations(rng: random.Random, now: datetime) -> list[Any]:
    """Two visits: a year or two ago and within the last months (weight, blood pressure,
    creatinine; height and heart rate at the recent one) — 8 results."""
    from clinicos.records.services.clinical.observation_rules import Component, ObservationFields

    weight = Decimal(str(round(rng.uniform(45, 120), 1)))
    creatinine = Decimal(str(round(min(8.0, rng.lognormvariate(0.1, 0.45)), 2)))
    umol = rng.random() < 0.2
    out: list[Any] = []
    for recent, days in ((False, rng.randrange(200, 720)), (True, rng.randrange(3, 170))):
        when = now - timedelta(days=days, minutes=rng.randrange(600))

        def obs(code: str, category: Any, when: datetime = when, **kw: Any) -> Any:
            return ObservationFields(
                code=code, category=category, status="final", effective_at=when, **kw
            )

        w = weight + Decimal(str(round(rng.uniform(-3, 3), 1)))
        out.append(obs("29463-7", "vital-signs", display="Body weight", value=w, unit="kg"))
        out.append(
            obs(
                "85354-9",
                "vital-signs",
                display="Blood pressure panel",
                components=(
                    Component(code="8480-6", value=Decimal(rng.randint(105, 165)), unit="mm[Hg]"),
                    Component(code="8462-4", value=Decimal(rng.randint(65, 100)), unit="mm[Hg]"),
                ),
            )
        )
        scr = creatinine * Decimal(str(round(rng.uniform(0.9, 1.1), 2)))
        if umol:
            out.append(
                obs(
                    "14682-9",
                    "laboratory",
                    value=(scr * Decimal("88.4")).quantize(Decimal(1)),
                    unit="umol/L",
                )
            )
        else:
            out.append(
                obs("2160-0", "laboratory", value=scr.quantize(Decimal("0.01")), unit="mg/dL")
            )
        if recent:
            height = Decimal(rng.randint(145, 190))
            out.append(obs("8302-2", "vital-signs", display="Body height", value=height, unit="cm"))
            out.append(
                obs(
                    "8867-4",
                    "vital-signs",
                    display="Heart rate",
                    value=Decimal(rng.randint(55, 105)),
                    unit="/min",
                )
            )
    return out


async def _seed(db: Database, email: str, patients: int) -> tuple[list[PatientRef], dict[str, int]]:
    from clinicos.bootstrap import build_container
    from clinicos.identity import member_actor
    from clinicos.records.services.clinical.conditions import ConditionFields, add_condition
    from clinicos.records.services.clinical.observations import add_observation
    from clinicos.records.services.medications.statements import (
        StatementFields,
        add_medication_statement,
    )
    from clinicos.records.services.patients import add_patient

    rng = random.Random(SEED)
    container = build_container(db.settings())
    refs: list[PatientRef] = []
    rows = {"patients": 0, "observations": 0, "conditions": 0, "medications": 0}
    started = time.perf_counter()
    try:
        actor = await member_actor(container.uow, organization_slug="bench", email=email)
        now = container.clock.now()
        today = now.date()
        for first in range(0, patients, BATCH):
            async with container.uow(actor.organization_id) as uow:
                for index in range(first, min(first + BATCH, patients)):
                    values = _patient_values(rng, index, today)
                    row = await add_patient(uow, container.phi, actor, values)
                    refs.append(
                        PatientRef(row.id, values.mrn, values.given_name, values.family_name)
                    )
                    scope = {"patient_id": row.id}
                    for obs in _observations(rng, now):
                        await add_observation(uow, container.phi, actor, **scope, values=obs)
                        rows["observations"] += 1
                    af = False
                    for icd10, snomed, display, share in _CONDITIONS:
                        if rng.random() < share:
                            af = af or icd10.startswith("I48")
                            onset = today - timedelta(days=rng.randrange(60, 4000))
                            await add_condition(
                                uow,
                                container.phi,
                                actor,
                                **scope,
                                values=ConditionFields(
                                    clinical_status="active",
                                    icd10_code=icd10,
                                    snomed_code=snomed,
                                    display=display,
                                    onset_date=onset,
                                ),
                            )
                            rows["conditions"] += 1
                    drugs = [rng.choice(_ANTICOAGULANTS)] if af and rng.random() < 0.7 else []
                    drugs += [d for d in _OTHER_DRUGS if rng.random() < 0.25]
                    for code, name, dose, frequency in drugs:
                        await add_medication_statement(
                            uow,
                            container.phi,
                            actor,
                            **scope,
                            values=StatementFields(
                                code_system=_RXNORM,
                                code=code,
                                display=name,
                                dose=Decimal(dose),
                                dose_unit="mg",
                                frequency=frequency,
                                route="oral",
                                status="active",
                                effective_start=today - timedelta(days=rng.randrange(30, 1500)),
                            ),
                        )
                        rows["medications"] += 1
                    rows["patients"] += 1
                await uow.commit()
            done = min(first + BATCH, patients)
            if done % 1000 == 0 or done == patients:
                elapsed = time.perf_counter() - started
                print(f"  mixed: seeded {done:,}/{patients:,} patients in {elapsed:.0f} s")
    finally:
        await container.dispose()
    return refs, rows


def _build(db: Database, patients: int, key: str) -> Dataset:
    email, password = add_clinician(db)
    started = time.perf_counter()
    refs, rows = asyncio.run(_seed(db, email, patients))
    seconds = time.perf_counter() - started
    print(f"  mixed: seeding {patients:,} patients ({rows}) took {seconds:.0f} s")
    return Dataset(patients, email, password, refs, seconds, rows, key)


TOKEN_TTL_VARIABLE = "CLINICOS_IDENTITY__ACCESS_TOKEN_TTL_SECONDS"  # noqa: S105 - a name


class LongTokenDatabase(Database):
    """The same database with hour-long access tokens, so one sign-in lasts a whole soak (the
    default 15 minutes is shorter than a step-up plus a soak). Nothing else changes."""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**({TOKEN_TTL_VARIABLE: "3600"} | extra))


@contextmanager
def mixed_database(
    engine: str, work_dir: Path, postgres_admin_url: str, patients: int
) -> Iterator[tuple[Database, Dataset]]:
    """A copy of the seeded dataset (seeded first when the cache lacks it) and what it holds."""
    key = dataset_key(patients)
    CACHE.mkdir(parents=True, exist_ok=True)
    meta_path = CACHE / f"mixed-{engine}-{key}.json"
    var_dir = work_dir / f"mixed-{engine}-{uuid.uuid4().hex[:6]}"
    var_dir.mkdir(parents=True)
    if engine == "sqlite":
        cached_file = CACHE / f"mixed-sqlite-{key}.db"
        if not (cached_file.exists() and meta_path.exists()):
            build_dir = work_dir / f"mixed-seed-sqlite-{key}"
            build_dir.mkdir(parents=True, exist_ok=True)
            built = Database(engine, f"sqlite+aiosqlite:///{build_dir / 'clinicos.db'}", build_dir)
            built.clinicos("db", "upgrade")
            dataset = _build(built, patients, key)
            lite = sqlite3.connect(build_dir / "clinicos.db")
            lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            lite.execute("ANALYZE")
            lite.close()
            shutil.copyfile(build_dir / "clinicos.db", cached_file)
            meta_path.write_text(dataset.as_json(), encoding="utf-8")
            shutil.rmtree(build_dir, ignore_errors=True)
        dataset = Dataset.from_json(meta_path.read_text(encoding="utf-8"))
        dataset.cached = True
        began = time.perf_counter()
        shutil.copyfile(cached_file, var_dir / "clinicos.db")
        dataset.copy_seconds = time.perf_counter() - began
        yield (
            LongTokenDatabase(engine, f"sqlite+aiosqlite:///{var_dir / 'clinicos.db'}", var_dir),
            dataset,
        )
        return
    template = f"clinicos_bench_mixed_{key}"
    with psycopg.connect(postgres_admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (template,)
        ).fetchone()
        if not (exists and meta_path.exists()):
            conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{template}"')
            try:
                built = Database(engine, _pg_url(postgres_admin_url, template), var_dir)
                built.clinicos("db", "upgrade")
                dataset = _build(built, patients, key)
                with psycopg.connect(built.url, autocommit=True) as owner:
                    owner.execute("VACUUM ANALYZE")
            except BaseException:
                conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
                raise
            meta_path.write_text(dataset.as_json(), encoding="utf-8")
        dataset = Dataset.from_json(meta_path.read_text(encoding="utf-8"))
        dataset.cached = True
        name = f"clinicos_bench_{uuid.uuid4().hex[:8]}"
        began = time.perf_counter()
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        dataset.copy_seconds = time.perf_counter() - began
    try:
        yield LongTokenDatabase(engine, _pg_url(postgres_admin_url, name), var_dir), dataset
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the requests -------------------------------------------------------------------------------

Call = tuple[str, str, bytes]  # method, path, body


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _calls(kind: str, ref: PatientRef, rng: random.Random, now: datetime) -> list[Call]:
    base = f"/api/v1/patients/{ref.id}"
    if kind == "chart":
        return [("GET", base, b""), ("GET", f"{base}/observations?limit=100", b"")]
    if kind == "search":
        pick = rng.random()
        if pick < 0.4:
            criteria = {"mrn": ref.mrn}
        elif pick < 0.8:
            criteria = {"name": f"{ref.given} {ref.family}"}
        else:
            criteria = {"family_name": ref.family}
        return [("POST", "/api/v1/patients/search", _json(criteria | {"limit": 20}))]
    if kind == "cds":
        drug, dose, frequency, indication = rng.choice(_ORDERS)
        order = {"drug": drug, "dose_mg": float(dose), "frequency": frequency}
        order["indication"] = indication
        return [("POST", "/api/v1/cds/evaluate", _json({"patient_id": ref.id, "order": order}))]
    if kind == "observation":
        when = (now - timedelta(minutes=rng.randrange(5, 240))).isoformat()
        choice = rng.randrange(4)
        if choice == 0:
            body: dict[str, Any] = {
                "code": "29463-7",
                "category": "vital-signs",
                "value": round(rng.uniform(45, 120), 1),
                "unit": "kg",
            }
        elif choice == 1:
            body = {
                "code": "85354-9",
                "category": "vital-signs",
                "components": [
                    {"code": "8480-6", "value": rng.randint(105, 165), "unit": "mm[Hg]"},
                    {"code": "8462-4", "value": rng.randint(65, 100), "unit": "mm[Hg]"},
                ],
            }
        elif choice == 2:
            body = {
                "code": "8867-4",
                "category": "vital-signs",
                "value": rng.randint(55, 105),
                "unit": "/min",
            }
        else:
            body = {
                "code": "2160-0",
                "category": "laboratory",
                "value": round(rng.uniform(0.6, 3.0), 2),
                "unit": "mg/dL",
            }
        return [("POST", f"{base}/observations", _json(body | {"effective_at": when}))]
    if kind == "note":
        return [("POST", f"{base}/notes", _json({"kind": "progress", "text": _NOTE}))]
    raise ValueError(kind)


@dataclass
class Mix:
    operations: list[Operation]
    samples: dict[str, list[Call]]  # one operation of each kind, to check before loading


def build_mix(
    port: int, token: str, dataset: Dataset, *, count: int = MIX_LENGTH, seed: int = SEED
) -> Mix:
    """``count`` operations in the issue's proportions, patients drawn uniformly at random."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    per_kind = max(1, count // 2)
    pools: list[tuple[str, float, list[Operation]]] = []
    samples: dict[str, list[Call]] = {}
    for kind, weight in MIX:
        pool = []
        for _ in range(int(per_kind * weight) + 1):
            calls = _calls(kind, rng.choice(dataset.refs), rng, now)
            samples.setdefault(kind, calls)
            pool.append(
                Operation(
                    kind,
                    tuple(
                        build_request(method, HOST, port, path, body=body, token=token)
                        for method, path, body in calls
                    ),
                )
            )
        pools.append((kind, weight, pool))
    return Mix(weighted_mix(pools, count, seed=seed), samples)


def check_mix(server: Server, token: str, mix: Mix) -> None:
    """One operation of each kind must succeed before the load (errors under load mean load)."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for kind, calls in mix.samples.items():
            for method, path, body in calls:
                response = client.request(method, path, content=body or None, headers=headers)
                if not response.is_success:
                    raise RuntimeError(
                        f"{kind}: {method} {path} answered {response.status_code}: "
                        f"{response.text[:500]}"
                    )


# -- the benchmark ------------------------------------------------------------------------------


def _print_step(m: Measured) -> None:
    r = m.result
    kinds = " ".join(
        f"{k}={v['p95_ms']}" for k, v in r.kind_summary().items() if v["p95_ms"] is not None
    )
    print(
        f"  mixed: {r.offered_rate:g}/s -> {r.achieved_rate:.1f}/s p50 {r.p(50):.0f} "
        f"p95 {r.p(95):.0f} p99 {r.p(99):.0f} ms, errors {r.errors} {r.error_kinds or ''}; "
        f"server CPU {m.server_cpu_ms_per_request} ms/op; p95 by kind {kinds}"
    )


def _engine(engine: str, options: Options, section: Section) -> None:
    patients = options.count(PATIENTS)
    with mixed_database(engine, options.work_dir, options.postgres_admin_url, patients) as (
        db,
        dataset,
    ):
        print(f"  mixed: {engine} dataset {dataset.summary()}")
        Server(db, log_name="first-start.log").__enter__().stop()  # creates the signing key
        with Server(db) as server:
            rss_idle = server.rss_mb()
            token = server.login(dataset.email, dataset.password)
            mix = build_mix(server.port, token, dataset)
            check_mix(server, token, mix)
            with RssSampler(server) as sampler:
                warm = constant_rate(
                    server, mix.operations, rate=RATES[0], duration=options.seconds(WARMUP_SECONDS)
                )
                _print_step(warm)
                best, steps = step_until(
                    server,
                    mix.operations,
                    rates=RATES,
                    duration=options.seconds(STEP_SECONDS),
                    p95_limit_ms=P95_LIMIT_MS,
                    stop_p95_ms=STOP_P95_MS,
                    lower=LOWER_RATES,
                    on_step=_print_step,
                )
            rss_after = server.rss_mb()
    at_best = next((m for m in steps if m.result.offered_rate == best), None)
    kinds = at_best.result.kind_summary() if at_best else {}
    http_per_op = sum(w * (2 if k == "chart" else 1) for k, w in MIX)
    details = {
        "dataset": dataset.summary(),
        "steps": [m.result.summary() for m in steps],
        "server_cpu_ms_per_request": [m.server_cpu_ms_per_request for m in steps],
        "warmup": warm.result.summary(),
        "http_requests_per_operation": http_per_op,
    }
    section.figures.append(
        Figure(
            f"mixed.step_up.{engine}",
            f"mixed workload, {dataset.patients:,} patients: highest rate held "
            "(p95 < 100 ms, no errors)",
            "op/s",
            [best],
            engine=engine,
            target=TARGET if engine == "postgresql" else None,
            runs_note=f"1 run, {options.seconds(STEP_SECONDS):.0f} s steps",
            details=details,
        )
    )
    if at_best is not None:
        r = at_best.result
        for kind in KINDS:
            p95 = kinds.get(kind, {}).get("p95_ms")
            if p95 is not None:
                section.figures.append(
                    Figure(
                        f"mixed.held.p95.{kind}.{engine}",
                        f"p95 of {kind} at {best:g} op/s",
                        "ms",
                        [float(p95)],
                        engine=engine,
                        runs_note="1 run",
                    )
                )
        section.figures += [
            Figure(
                f"mixed.held.p95.{engine}",
                f"p95, all operations, at {best:g} op/s",
                "ms",
                [round(r.p(95), 2)],
                engine=engine,
                runs_note="1 run",
            ),
            Figure(
                f"mixed.held.server_cpu.{engine}",
                f"server CPU per operation at {best:g} op/s",
                "ms",
                [at_best.server_cpu_ms_per_request],
                engine=engine,
                runs_note="1 run",
            ),
        ]
    section.figures += [
        Figure(
            f"mixed.rss_peak.{engine}",
            "API RSS: idle / peak under the steps / after",
            "MB",
            [round(sampler.peak_mb, 1)],
            engine=engine,
            runs_note=f"idle {rss_idle:.0f}, after {rss_after:.0f}",
        ),
        Figure(
            f"mixed.seed_seconds.{engine}",
            f"seeding {dataset.patients:,} patients ({sum(dataset.rows.values()):,} rows) "
            "through the record services",
            "s",
            [round(dataset.seed_seconds, 1)],
            engine=engine,
            runs_note="from the cache" if dataset.cached else "1 run",
            details=dataset.summary(),
        ),
    ]


def run(options: Options) -> Section:
    section = Section("mixed", "Mixed clinical workload over HTTP (issue 8)")
    for engine in options.engines:
        _engine(engine, options, section)
    shares = ", ".join(f"{k} {w:.0%}" for k, w in MIX)
    section.notes += [
        f"Mix ({shares}), patients drawn uniformly (seeded RNG) over the whole dataset: chart = "
        "`GET /api/v1/patients/{id}` then `GET …/observations?limit=100` on one connection "
        "(latency to the second answer; an operation counts as 2 HTTP requests); search = "
        "`POST /api/v1/patients/search` by MRN 40%, full name 40%, family name 20%; CDS = "
        "`POST /api/v1/cds/evaluate` in record mode (`patient_id`: reads the record, persists "
        "the evaluation, governance event and audit entry); observation = `POST "
        "…/observations` (weight, BP panel, heart rate or creatinine); note = `POST …/notes` "
        "(a ~600-character draft). Every one of them, reads included, writes audit entries.",
        "Dataset: patients with two visits of results each (weight, blood pressure, serum "
        "creatinine — 20% in µmol/L — and height and heart rate at the recent one: 8 "
        "observations), hypertension/diabetes/atrial fibrillation/DVT/CKD by prevalence, a DOAC "
        "on the medication list of most with atrial fibrillation and some co-medications; "
        "written through records' use cases in process (PHI sealed, blind indexes, audit and "
        "outbox rows as the API writes them), 100 patients per transaction. Cached in "
        "`var/bench-cache/` (SQLite file, PostgreSQL template database) keyed by the dataset "
        "version, size and migrations; the seeding figure is the time of the run that filled "
        "the cache.",
        f"Open-loop steps of {STEP_SECONDS:.0f} s at increasing rates (operations/s; "
        f"{http_per_op_text()} HTTP requests per operation on average) after a "
        f"{WARMUP_SECONDS:.0f} s warm-up, until p95 passes {STOP_P95_MS:.0f} ms or a request "
        "fails. A rate is held when p95 < 100 ms, no operation failed and answers kept within "
        "2% of the offered rate. Same server set-up as the CDS figure (one `clinicos serve "
        "--no-worker` process; the outbox is not drained during the run). The target is "
        "issue 8's, for PostgreSQL; the machine's 2 cores are shared by the server, the "
        "database, the load generator and other engineers' test runs.",
    ]
    return section


def http_per_op_text() -> str:
    return f"{sum(w * (2 if k == 'chart' else 1) for k, w in MIX):.1f}"
