"""What a benchmark returns: figures (one value per run) with their targets, grouped in sections."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.stats import Summary

Comparison = Literal[">=", ">", "<=", "<"]
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Target:
    """A goal the median must meet, e.g. ``Target(">=", 20_000, "issue 5")``."""

    comparison: Comparison
    value: float
    source: str

    def met_by(self, value: float) -> bool:
        return _OPERATORS[self.comparison](value, self.value)


@dataclass
class Figure:
    """One measured quantity: ``samples`` holds one value per run."""

    key: str
    name: str
    unit: str
    samples: list[float]  # one per run (ints are fine)
    engine: str | None = None
    target: Target | None = None
    runs_note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> Summary:
        return Summary.of(self.samples)

    @property
    def status(self) -> str:
        if self.target is None:
            return ""
        return "PASS" if self.target.met_by(self.summary.median) else "MISS"

    def as_json(self) -> dict[str, Any]:
        s = self.summary
        return {
            "key": self.key,
            "name": self.name,
            "unit": self.unit,
            "engine": self.engine,
            "samples": self.samples,
            "median": s.median,
            "min": s.minimum,
            "max": s.maximum,
            "q1": s.q1,
            "q3": s.q3,
            "runs": s.n,
            "target": None
            if self.target is None
            else {
                "comparison": self.target.comparison,
                "value": self.target.value,
                "source": self.target.source,
            },
            "status": self.status or None,
            "runs_note": self.runs_note,
            "details": self.details,
        }


@dataclass
class Section:
    """One benchmark's output: its figures and what the reader should know about them."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    # The run it was measured in (start, commit, load): sections of several runs can be merged.
    measured: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "figures": [f.as_json() for f in self.figures],
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "measured": self.measured,
        }
