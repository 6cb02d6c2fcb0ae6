"""The packaged-pack catalogue: content hashes, canonical overlays, effective versions and the
in-process cache of parsed packs keyed by (id, version, content, overlay)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from clinicos.cds import catalogue
from clinicos.cds.engine import DEFAULT_PACK_VERSION, load_rule_pack
from clinicos.kernel.errors import NotFound, ValidationFailed

OVERLAY = {
    "base_id": "doac",
    "base_version": "1.0.0",
    "version": "1.0.0+acme.1",
    "reviewer": None,
    "approved_at": None,
    "rules": {
        "rivaroxaban_crcl_15_29_limited_data": {
            "policy": "local",
            "severity": "BLOCK",
            "source": "Acme committee",
        }
    },
    "thresholds": {"creatinine_max_age_days": {"policy": "local", "source": "Acme", "value": 60}},
}


def test_packaged_packs_lists_the_shipped_default_with_its_sha256() -> None:
    packed = catalogue.packaged_pack("doac", DEFAULT_PACK_VERSION)

    assert (packed.id, packed.version) == ("doac", DEFAULT_PACK_VERSION)
    assert packed.sha256 == catalogue.sha256_text(packed.text)
    assert catalogue.build_pack(packed) == load_rule_pack()


def test_packaged_pack_when_unknown_names_what_is_packaged() -> None:
    with pytest.raises(NotFound, match=r"no packaged rule pack 'doac 0\.1' \(packaged: doac"):
        catalogue.packaged_pack("doac", "0.1")


def test_canonical_overlay_hash_ignores_key_order_and_whitespace() -> None:
    reordered = json.dumps(dict(reversed(list(OVERLAY.items()))), indent=4)

    first = catalogue.canonical_overlay(OVERLAY)
    second = catalogue.canonical_overlay(reordered)

    assert first.sha256 == second.sha256
    assert first.data == second.data
    assert catalogue.canonical_overlay(OVERLAY | {"version": "1.0.0+acme.2"}).sha256 != first.sha256


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "overlay rejected: "),
        (OVERLAY | {"surprise": 1}, "surprise: Extra inputs are not permitted"),
        ({"base_id": "doac"}, "base_version: Field required"),
    ],
    ids=["not-json", "unknown-key", "missing-field"],
)
def test_canonical_overlay_when_malformed_names_the_first_problem(
    raw: object, message: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        catalogue.canonical_overlay(raw)  # type: ignore[arg-type]

    assert caught.value.code == "invalid_overlay"
    assert message in caught.value.detail
    assert "\n" not in caught.value.detail


def test_build_pack_with_overlay_reports_local_version_and_local_policy() -> None:
    overlay = catalogue.canonical_overlay(OVERLAY)

    pack = catalogue.build_pack(catalogue.packaged_pack("doac", "1.0.0"), overlay)

    assert pack.version == f"1.0.0+local.{overlay.sha256[:8]}"
    assert pack.version == catalogue.effective_version("1.0.0", overlay.sha256)
    rule = pack.rules["rivaroxaban_crcl_15_29_limited_data"]
    assert (rule.severity, rule.policy, rule.source) == ("BLOCK", "local", "Acme committee")
    assert pack.threshold("creatinine_max_age_days") == 60
    assert pack.rules["creatinine_stale"].policy == "local"


def test_build_pack_is_cached_per_content_and_overlay() -> None:
    packed = catalogue.packaged_pack("doac", "1.0.0")
    overlay = catalogue.canonical_overlay(OVERLAY)
    text = packed.text.replace("DOAC order check", "DOAC order check (edited)", 1)
    edited = replace(packed, text=text, sha256=catalogue.sha256_text(text))

    assert catalogue.build_pack(packed) is catalogue.build_pack(packed)
    assert catalogue.build_pack(packed, overlay) is catalogue.build_pack(packed, overlay)
    assert catalogue.build_pack(packed, overlay) is not catalogue.build_pack(packed)
    assert "(edited)" in catalogue.build_pack(edited).title


def test_effective_version_without_overlay_is_the_base_version() -> None:
    assert catalogue.effective_version("1.0.0", None) == "1.0.0"
