"""The regression guard's comparison with its baseline (pure logic: nothing is timed here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.smoke import (
    BASELINE,
    BaselineError,
    Pair,
    Side,
    any_failed,
    baseline_document,
    compare,
    load_baseline,
    measure_round,
    render_table,
)


def test_a_31_percent_drop_fails() -> None:
    [verdict] = compare({"cds": 0.69}, {"cds": 1.0})

    assert verdict.status == "REGRESSED"
    assert verdict.share == pytest.approx(0.69)
    assert any_failed([verdict])


def test_a_29_percent_drop_passes() -> None:
    [verdict] = compare({"cds": 0.71}, {"cds": 1.0})

    assert verdict.status == "ok"
    assert not any_failed([verdict])


def test_exactly_at_the_floor_passes() -> None:
    # 0.7 * 0.3 is 0.21 in decimal but not in binary floating point: the floor still passes.
    [verdict] = compare({"cds": 0.21}, {"cds": 0.3})

    assert verdict.status == "ok"


def test_faster_than_the_baseline_passes() -> None:
    [verdict] = compare({"cds": 2.5}, {"cds": 1.0})

    assert verdict.status == "ok"
    assert verdict.share == pytest.approx(2.5)


def test_the_tolerance_can_be_changed() -> None:
    assert compare({"a": 0.85}, {"a": 1.0}, tolerance=0.2)[0].status == "ok"
    assert compare({"a": 0.85}, {"a": 1.0}, tolerance=0.15)[0].status == "ok"
    assert compare({"a": 0.85}, {"a": 1.0}, tolerance=0.1)[0].status == "REGRESSED"
    with pytest.raises(ValueError):
        compare({"a": 1.0}, {"a": 1.0}, tolerance=1.5)


def test_a_ratio_missing_from_the_baseline_fails_and_says_how_to_record_it() -> None:
    verdicts = compare({"old": 1.0, "new": 0.5}, {"old": 1.0})

    assert [(v.name, v.status) for v in verdicts] == [("old", "ok"), ("new", "NO BASELINE")]
    assert verdicts[1].share is None
    assert any_failed(verdicts)
    table = render_table(verdicts)
    assert "FAIL new: measured but not in the baseline" in table
    assert "make bench-smoke-baseline" in table


def test_a_baseline_ratio_no_longer_measured_fails() -> None:
    verdicts = compare({"kept": 1.0}, {"kept": 1.0, "renamed": 2.0})

    assert [(v.name, v.status) for v in verdicts] == [("kept", "ok"), ("renamed", "NOT MEASURED")]
    assert any_failed(verdicts)
    assert "FAIL renamed: in the baseline but no longer measured" in render_table(verdicts)


def test_the_table_shows_ratio_baseline_share_and_status() -> None:
    verdicts = compare({"cds": 0.5, "phi": 0.26}, {"cds": 1.0, "phi": 0.25})

    table = render_table(verdicts, spreads={"cds": (0.45, 0.55)})
    lines = table.splitlines()

    header = ["ratio", "measured", "baseline", "vs", "baseline", "rounds", "min-max", "status"]
    assert lines[0].split() == header
    cds = next(line for line in lines if line.startswith("cds "))
    assert cds.split() == ["cds", "0.5", "1", "50%", "0.45-0.55", "REGRESSED"]
    phi = next(line for line in lines if line.startswith("phi "))
    assert phi.split() == ["phi", "0.26", "0.25", "104%", "—", "ok"]
    assert "FAIL cds: 0.5 is 50% of the baseline 1 (floor 70%)" in table


def test_a_missing_baseline_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match=r"no baseline at .*make bench-smoke-baseline"):
        load_baseline(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "unreadable baseline"),
        ("[]", 'no "ratios" object'),
        ('{"ratios": {}}', 'no "ratios" object'),
        ('{"ratios": {"cds": {"value": -1}}}', "'cds' is not a positive number"),
        ('{"ratios": {"cds": {"value": true}}}', "'cds' is not a positive number"),
        ('{"ratios": {"cds": "fast"}}', "'cds' is not a positive number"),
    ],
)
def test_a_malformed_baseline_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(BaselineError, match=message):
        load_baseline(path)


def test_a_written_baseline_reads_back(tmp_path: Path) -> None:
    document = baseline_document(
        {"cds": 0.25, "phi": 0.5},
        {"cds": [0.24, 0.25, 0.26], "phi": [0.5]},
        {"cds": "engine ÷ python", "phi": "keyring ÷ aesgcm"},
        {"at": "2026-12-03T10:00:00+00:00"},
    )
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    assert load_baseline(path) == {"cds": 0.25, "phi": 0.5}
    assert document["ratios"]["cds"]["rounds"] == [0.24, 0.25, 0.26]


def test_the_committed_baseline_is_readable_and_names_the_measured_ratios() -> None:
    names = set(load_baseline(BASELINE))

    assert names == {
        "cds.evaluate_vs_python",
        "phi.roundtrip_vs_aesgcm",
        "audit.append_vs_bare_sqlite",
        "audit.verify_vs_read_and_hash",
    }


def test_a_round_divides_the_fastest_chunk_of_each_side() -> None:
    """With a fake clock: each chunk of one call takes what the side's next duration says."""
    now = [0.0]
    durations = {"ours": iter([0.5, 0.25, 1.0, 0.5]), "ref": iter([0.2, 0.1, 0.4, 0.2])}

    def clock() -> float:
        return now[0]

    def call(side: str) -> None:
        now[0] += next(durations[side])

    pair = Pair(
        "x",
        "fake",
        Side(lambda: call("ours"), clock, batch=1),
        Side(lambda: call("ref"), clock, batch=1),
    )

    # Fastest: ours 1 call in 0.25 (4/s), reference 1 call in 0.1 (10/s).
    assert measure_round(pair, seconds=0.0) == pytest.approx(0.4)
