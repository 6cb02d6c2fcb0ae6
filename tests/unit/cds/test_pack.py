"""Rule-pack validation at load, and organization overlays (merge + validation)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from clinicos.cds.engine import (
    ENGINE_REASON_KEYS,
    OverlayError,
    PackOverlay,
    apply_overlay,
    available_pack_versions,
    load_rule_pack,
    parse_rule_pack,
)
from tests.unit.cds.builders import PACK, order, patient, run, weight_for_crcl

RIVA_VTE = order("rivaroxaban", 15, "BID", "vte_treatment")
LOCAL_MESSAGES = {
    "en": "Local policy: rivaroxaban is not used below CrCl 30 mL/min here.",
    "es": "Política local: no se usa rivaroxabán con ClCr inferior a 30 mL/min.",
    "pt": "Política local: rivaroxabana não é usada com ClCr abaixo de 30 mL/min.",
}


def pack_data() -> dict[str, Any]:
    return copy.deepcopy(PACK.model_dump())


def stricter_rivaroxaban() -> dict[str, Any]:
    return {
        "base_id": "doac",
        "base_version": PACK.version,
        "version": f"{PACK.version}+acme.1",
        "reviewer": "Dr A. Pharmacist",
        "approved_at": datetime(2026, 11, 1, tzinfo=UTC),
        "rules": {
            "rivaroxaban_crcl_15_29_limited_data": {
                "policy": "local",
                "severity": "BLOCK",
                "source": "Acme committee 2026-10 (older Xarelto labels: avoid <30)",
                "messages": LOCAL_MESSAGES,
            }
        },
    }


def test_pack_packaged_default_loads_with_every_engine_key() -> None:
    pack = load_rule_pack()

    assert (pack.id, pack.version) == ("doac", "1.0.0")
    assert set(pack.rules) == ENGINE_REASON_KEYS
    assert available_pack_versions() == ("1.0.0",)
    assert not pack.is_approved
    assert pack.drugs["apixaban"].rxnorm == ("1364430",)


def test_pack_index_holds_the_packs_tables_and_compares_by_content() -> None:
    pack = load_rule_pack()
    index = pack.index

    assert index.thresholds["beers_age_min_years"] == pack.thresholds.beers_age_min_years.value
    assert index.lists["anticoagulants"] == frozenset(pack.drug_lists.anticoagulants.members)
    assert index.messages["crcl_below_15"] == pack.rules["crcl_below_15"].messages.model_dump()
    assert list(index.rule_order) == list(pack.rules)
    assert index == load_rule_pack().index  # equal packs stay equal (pydantic compares it)
    assert index != "not an index"
    assert pack.drug_list("anticoagulants") is index.lists["anticoagulants"]


def test_pack_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rule pack version"):
        load_rule_pack("9.9.9")


def test_pack_json_text_parses_with_exact_decimals() -> None:
    text = json.dumps(PACK.model_dump(mode="json"))

    pack = parse_rule_pack(text)

    assert pack.threshold("apixaban_scr_min_mg_dl") == Decimal("1.5")


def _broken(mutate: Any) -> dict[str, Any]:
    data = pack_data()
    mutate(data)
    return data


BROKEN_PACKS = [
    pytest.param(lambda d: d.update(colour="blue"), "Extra inputs", id="unknown_top_level_key"),
    pytest.param(
        lambda d: d["rules"]["active_bleeding"].update(note="x"),
        "Extra inputs",
        id="unknown_rule_key",
    ),
    pytest.param(
        lambda d: d["rules"]["active_bleeding"]["messages"].pop("pt"),
        "pt",
        id="missing_message_language",
    ),
    pytest.param(
        lambda d: d["rules"]["active_bleeding"]["messages"].update(es=""), "es", id="empty_message"
    ),
    pytest.param(
        lambda d: d["rules"]["active_bleeding"].update(severity="FATAL"),
        "severity",
        id="bad_severity",
    ),
    pytest.param(
        lambda d: d["rules"]["active_bleeding"].update(policy="guess"),
        "policy",
        id="bad_policy_flag",
    ),
    pytest.param(
        lambda d: d["rules"].pop("crcl_below_15"), "lacks reason keys", id="missing_reason_key"
    ),
    pytest.param(
        lambda d: d["rules"].update(extra_rule=d["rules"]["active_bleeding"]),
        "does not know",
        id="unknown_reason_key",
    ),
    pytest.param(
        lambda d: d["rules"]["active_bleeding"].update(severity="ATTEST"),
        "ATTEST is reserved",
        id="attest_outside_gates",
    ),
    pytest.param(
        lambda d: d["rules"]["weight_stale"].update(severity="WARN"),
        "ATTEST is reserved",
        id="gate_not_attest",
    ),
    pytest.param(
        lambda d: d["thresholds"]["crcl_block_below"].update(rules=["nope"]),
        "unknown rules",
        id="threshold_names_unknown_rule",
    ),
    pytest.param(
        lambda d: d["thresholds"].pop("beers_age_min_years"),
        "beers_age_min_years",
        id="missing_threshold",
    ),
    pytest.param(
        lambda d: d["drug_lists"].pop("anticoagulants"), "anticoagulants", id="missing_drug_list"
    ),
    pytest.param(
        lambda d: d.update(approved_at="2026-01-01T00:00:00Z"),
        "reviewer",
        id="approved_without_reviewer",
    ),
    pytest.param(lambda d: d["drugs"].pop("warfarin"), "exactly these drugs", id="missing_drug"),
    pytest.param(
        lambda d: d["drugs"]["apixaban"].update(inducer_list="nope"),
        "inducer list",
        id="unknown_inducer_list",
    ),
    pytest.param(
        lambda d: d["regimens"].pop("edoxaban"), "no labelled regimens", id="doac_without_regimens"
    ),
    pytest.param(
        lambda d: d["regimens"]["apixaban"]["nvaf"][0].update(frequency="HOURLY"),
        "frequency",
        id="bad_regimen_frequency",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), BROKEN_PACKS)
def test_pack_invalid_is_rejected_at_load(mutate: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_rule_pack(_broken(mutate))


def test_overlay_stricter_rivaroxaban_blocks_below_30_as_local_policy() -> None:
    local = apply_overlay(PACK, stricter_rivaroxaban())
    facts = patient(
        weight_kg=weight_for_crcl("29.9", scr="2.5"), serum_creatinine_mg_dl=Decimal("2.5")
    )

    result = run(facts, RIVA_VTE, local)

    assert result.outcome == "BLOCK"
    (reason,) = result.reasons
    assert (reason.key, reason.policy, reason.severity) == (
        "rivaroxaban_crcl_15_29_limited_data",
        "local",
        "BLOCK",
    )
    assert reason.message("es") == LOCAL_MESSAGES["es"]
    assert (result.rule_pack.version, local.reviewer, local.is_approved) == (
        "1.0.0+acme.1",
        "Dr A. Pharmacist",
        True,
    )
    assert run(facts, RIVA_VTE).outcome == "WARN"  # the base pack is untouched


def test_overlay_stricter_rivaroxaban_leaves_crcl_30_passing() -> None:
    local = apply_overlay(PACK, stricter_rivaroxaban())
    facts = patient(
        weight_kg=weight_for_crcl("30.0", scr="2.5"), serum_creatinine_mg_dl=Decimal("2.5")
    )

    assert run(facts, RIVA_VTE, local).outcome == "PASS"


def test_overlay_threshold_change_marks_reading_rules_local() -> None:
    overlay = {
        "base_id": "doac",
        "base_version": PACK.version,
        "version": "1.0.0+acme.2",
        "reviewer": None,
        "approved_at": None,
        "thresholds": {
            "creatinine_max_age_days": {"policy": "local", "source": "Acme: 60 days", "value": 60}
        },
    }

    local = apply_overlay(PACK, overlay)
    result = run(
        patient(creatinine_measured_days_ago=61), order("apixaban", 5, "BID", "nvaf"), local
    )

    assert result.reason_keys == {"creatinine_stale"}
    assert result.reasons[0].policy == "local"
    assert local.thresholds.creatinine_max_age_days.policy == "local"
    assert (
        run(
            patient(creatinine_measured_days_ago=60), order("apixaban", 5, "BID", "nvaf"), local
        ).outcome
        == "PASS"
    )


def test_overlay_severity_only_change_keeps_messages() -> None:
    overlay = stricter_rivaroxaban()
    del overlay["rules"]["rivaroxaban_crcl_15_29_limited_data"]["messages"]

    local = apply_overlay(PACK, overlay)

    rule = local.rules["rivaroxaban_crcl_15_29_limited_data"]
    assert rule.messages == PACK.rules["rivaroxaban_crcl_15_29_limited_data"].messages
    assert rule.severity == "BLOCK"


def _overlay_with(**changes: Any) -> dict[str, Any]:
    overlay = stricter_rivaroxaban()
    overlay.update(changes)
    return overlay


def _rule_change(**changes: Any) -> dict[str, Any]:
    rule = {"policy": "local", "source": "Acme"}
    rule.update(changes)
    return rule


BAD_OVERLAYS = [
    pytest.param(
        _overlay_with(base_version="0.9.0"), OverlayError, "overlay is for", id="wrong_base_version"
    ),
    pytest.param(
        _overlay_with(version=PACK.version), OverlayError, "its own version", id="same_version"
    ),
    pytest.param(
        _overlay_with(rules={"no_such_rule": _rule_change()}),
        OverlayError,
        "unknown rule",
        id="unknown_rule",
    ),
    pytest.param(
        _overlay_with(rules={"active_bleeding": _rule_change(severity="WARN")}),
        OverlayError,
        "may not lower",
        id="lower_severity",
    ),
    pytest.param(
        _overlay_with(rules={"beers_dabigatran_caution": _rule_change(severity="ATTEST")}),
        ValidationError,
        "ATTEST is reserved",
        id="attest_on_non_gate",
    ),
    pytest.param(
        _overlay_with(rules={"active_bleeding": {"policy": "label", "source": "x"}}),
        ValidationError,
        "policy",
        id="change_not_marked_local",
    ),
    pytest.param(
        _overlay_with(thresholds={"nope": {"policy": "local", "source": "x", "value": 1}}),
        OverlayError,
        "unknown threshold",
        id="unknown_threshold",
    ),
    pytest.param(
        _overlay_with(colour="blue"), ValidationError, "Extra inputs", id="unknown_overlay_key"
    ),
    pytest.param(
        _overlay_with(reviewer=None), ValidationError, "reviewer", id="approved_without_reviewer"
    ),
]


@pytest.mark.parametrize(("overlay", "error", "message"), BAD_OVERLAYS)
def test_overlay_invalid_is_rejected(
    overlay: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        apply_overlay(PACK, overlay)


def test_overlay_message_only_change_keeps_severity_and_accepts_model() -> None:
    overlay = stricter_rivaroxaban()
    del overlay["rules"]["rivaroxaban_crcl_15_29_limited_data"]["severity"]

    local = apply_overlay(PACK, PackOverlay.model_validate(overlay))

    rule = local.rules["rivaroxaban_crcl_15_29_limited_data"]
    assert (rule.severity, rule.policy, rule.messages.en) == ("WARN", "local", LOCAL_MESSAGES["en"])
