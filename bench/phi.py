"""Figure 2: PHI field encryption (AES-256-GCM tokens bound to organization/table/column/row) —
encrypt, decrypt and blind-index operations per second at realistic field sizes."""

from __future__ import annotations

import gc
import secrets
import time
from collections.abc import Callable

from bench.options import Options
from bench.results import Figure, Section
from clinicos.platform.phi import PhiKeyring

RUN_SECONDS = 0.7
# (label, plaintext): a family name, a postal address, a clinical note of about 2 KB.
FIELDS = (
    ("name, 14 B", "Quispe Mamani "),
    ("address, 64 B", "Av. Juan Pablo II 1234, Zona 16 de Julio, El Alto, La Paz, Bolivia"[:64]),
    (
        "note, 2 KiB",
        (
            "S: 72-year-old with NVAF on apixaban, reports mild bruising, no melena. "
            "O: BP 138/82, HR 76 irregular, weight 61 kg, SCr 1.6 mg/dL. "
            "A/P: meets two dose-reduction criteria; reduce to 2.5 mg BID, recheck in 4 weeks. "
        )
        * 8,
    )[:2048],
)


NAME = "QUISPE"  # a normalised family name, as the blind index of patient search sees it


def _keyring() -> PhiKeyring:
    return PhiKeyring(
        {1: secrets.token_bytes(32), 2: secrets.token_bytes(32)},
        active_version=2,
        blind_index_key=secrets.token_bytes(32),
    )


def _rate(operation: Callable[[int], object], seconds: float) -> float:
    """Calls of ``operation(i)`` per second over about ``seconds`` (in batches of 200)."""
    gc.collect()
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for i in range(200):
            operation(i)
        calls += 200
    return calls / (time.perf_counter() - started)


def run(options: Options) -> Section:
    section = Section("phi", "PHI field encryption (one core)")
    ring = _keyring()
    org = "0b7f7a52-6a55-4b8e-9a3c-3f9f1c1e2d10"
    runs = options.runs(5)
    seconds = options.seconds(RUN_SECONDS)
    row_ids = [f"row-{i:05d}" for i in range(200)]
    for label, text in FIELDS:
        tokens = [
            ring.encrypt(text, organization_id=org, table="patient", column="c", row_id=r)
            for r in row_ids
        ]

        def enc(i: int, text: str = text) -> object:
            return ring.encrypt(
                text, organization_id=org, table="patient", column="c", row_id=row_ids[i]
            )

        def dec(i: int, tokens: list[str] = tokens) -> object:
            return ring.decrypt(
                tokens[i], organization_id=org, table="patient", column="c", row_id=row_ids[i]
            )

        for verb, operation in (("encrypt", enc), ("decrypt", dec)):
            samples = [float(round(_rate(operation, seconds))) for _ in range(runs)]
            key = f"phi.{verb}.{label.split(',')[0]}"
            section.figures.append(Figure(key, f"{verb}, {label}", "ops/s", samples))
    samples = [
        float(round(_rate(lambda i: ring.blind_index(NAME, table="patient", column="c"), seconds)))
        for _ in range(runs)
    ]
    section.figures.append(Figure("phi.blind_index", "blind index, name", "ops/s", samples))
    section.notes.append(
        "`clinicos.platform.phi.PhiKeyring` with two generated 32-byte data keys (version 2 "
        "active) and a generated blind-index key; each call seals or opens one cell with its "
        "associated data (organization, table, column, row, version) and base64-encodes the token. "
        "No target in the issues; a chart with 20 PHI fields costs 20 decryptions."
    )
    return section
