"""Options shared by every benchmark (from the command line or ``CLINICOS_BENCH_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
ENGINES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Options:
    """``quick`` shortens every run (to try the harness, never for published numbers)."""

    work_dir: Path
    engines: tuple[str, ...] = ENGINES
    postgres_admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    quick: bool = False

    def runs(self, full: int) -> int:
        return 2 if self.quick else full

    def seconds(self, full: float) -> float:
        return max(1.0, full / 5) if self.quick else full

    def count(self, full: int) -> int:
        return max(1, full // 10) if self.quick else full
