"""Figure 1: the pure DOAC engine in this process (one core) — evaluations/s and per-call latency
over the published worked cases and over a broader generated mix."""

from __future__ import annotations

import gc
import time
from collections import Counter

from bench.cases import AS_OF, Case, example_cases, generated_cases, load_examples
from bench.options import Options
from bench.results import Figure, Section, Target
from bench.stats import percentile
from clinicos.cds.engine import evaluate, load_rule_pack

THROUGHPUT_TARGET = Target(">=", 20_000, "issue 5")
P99_TARGET = Target("<", 1.0, "issue 5")
RUN_SECONDS = 2.0


def _check_examples(cases: list[Case]) -> None:
    """The published cases must give their published outcome, or the figure means nothing."""
    pack = load_rule_pack()
    for (facts, order), case in zip(cases, load_examples(), strict=True):
        result = evaluate(facts, order, pack, AS_OF)
        expected = case["expected"]["outcome"]
        if result.outcome != expected:
            raise RuntimeError(f"{case['id']}: engine says {result.outcome}, expected {expected}")


def _usable(cases: list[Case]) -> tuple[list[Case], Counter[str]]:
    """Cases the engine accepts, and the outcome mix (to show what the mix covers)."""
    pack = load_rule_pack()
    kept: list[Case] = []
    outcomes: Counter[str] = Counter()
    for facts, order in cases:
        try:
            outcomes[evaluate(facts, order, pack, AS_OF).outcome] += 1
        except ValueError:
            outcomes["rejected (422)"] += 1
            continue
        kept.append((facts, order))
    return kept, outcomes


def _one_run(cases: list[Case], seconds: float) -> tuple[float, list[float]]:
    """Evaluate the cases round-robin for ``seconds``; (evaluations/s, latencies in ms)."""
    pack = load_rule_pack()
    latencies: list[int] = []
    clock = time.perf_counter_ns
    started = clock()
    deadline = started + int(seconds * 1e9)
    while clock() < deadline:
        for facts, order in cases:
            t0 = clock()
            evaluate(facts, order, pack, AS_OF)
            latencies.append(clock() - t0)
    elapsed = (clock() - started) / 1e9
    return len(latencies) / elapsed, [ns / 1e6 for ns in latencies]


def _figures(
    label: str, key: str, cases: list[Case], runs: int, seconds: float
) -> tuple[list[Figure], int]:
    rates, p50s, p99s = [], [], []
    calls = 0
    for _ in range(runs):
        gc.collect()
        rate, latencies = _one_run(cases, seconds)
        calls += len(latencies)
        rates.append(round(rate, 1))
        p50s.append(round(percentile(latencies, 50), 4))
        p99s.append(round(percentile(latencies, 99), 4))
    detail = {"cases": len(cases), "seconds_per_run": seconds}
    return [
        Figure(
            f"cds_inprocess.{key}.rate",
            f"evaluations/s, {label}",
            "eval/s",
            rates,
            target=THROUGHPUT_TARGET,
            details=detail,
        ),
        Figure(f"cds_inprocess.{key}.p50", f"latency p50, {label}", "ms", p50s),
        Figure(f"cds_inprocess.{key}.p99", f"latency p99, {label}", "ms", p99s, target=P99_TARGET),
    ], calls


def run(options: Options) -> Section:
    section = Section("cds_inprocess", "In-process CDS engine (one core)")
    examples = example_cases()
    _check_examples(examples)
    mix, outcomes = _usable(generated_cases())
    runs = options.runs(5)
    seconds = options.seconds(RUN_SECONDS)
    for label, key, cases in (
        (f"published examples ({len(examples)} cases)", "examples", examples),
        (f"generated mix ({len(mix)} cases)", "mix", mix),
    ):
        figures, _ = _figures(label, key, cases, runs, seconds)
        section.figures += figures
    section.notes.append(
        "Each call is `clinicos.cds.engine.evaluate(facts, order, pack, as_of)` on plain dicts "
        "(pydantic validation of facts and order included, as the API and the prescribing gate "
        "pay it), in one thread with the garbage collector on; latency is timed per call."
    )
    mix_text = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    section.notes.append(
        "The generated mix (seed 1): ages 18-98, weights 38-140 kg, SCr 0.5-8 mg/dL (20% in "
        "µmol/L), 4% missing creatinine, 4% missing weight, stale measurements, 0-2 interacting "
        f"and 0-2 harmless co-medications, every drug and indication. Outcomes: {mix_text}."
    )
    return section
