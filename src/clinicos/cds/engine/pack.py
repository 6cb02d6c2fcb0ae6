"""The rule pack: pydantic models that validate the versioned data file, and its loader."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from clinicos.cds.engine.keys import (
    DATA_GATE_KEYS,
    ENGINE_REASON_KEYS,
    Drug,
    Frequency,
    Indication,
    PolicyFlag,
    Severity,
)

RULES_PACKAGE = "clinicos.cds.rules"
DEFAULT_PACK_VERSION = "1.0.0"
ALL_DRUGS: frozenset[str] = frozenset(
    {"apixaban", "rivaroxaban", "dabigatran", "edoxaban", "warfarin"}
)


class StrictModel(BaseModel):
    """Frozen and closed: an unknown key in the pack is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Messages(StrictModel):
    """One text in every language the console and API serve."""

    en: str = Field(min_length=1)
    es: str = Field(min_length=1)
    pt: str = Field(min_length=1)


class Rule(StrictModel):
    """One reason key: its fixed severity, whose rule it is, its source and explanation."""

    severity: Severity
    policy: PolicyFlag
    source: str = Field(min_length=1)
    messages: Messages


class Threshold(StrictModel):
    """A cut-off, its source, and the reason keys that read it (marked local if overridden)."""

    value: Decimal
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1)
    policy: PolicyFlag
    rules: tuple[str, ...] = Field(min_length=1)


class Thresholds(StrictModel):
    """Every threshold the engine reads; names say whether the bound is inclusive."""

    creatinine_max_age_days: Threshold
    weight_max_age_days: Threshold
    crcl_block_below: Threshold
    apixaban_age_min_years: Threshold
    apixaban_weight_max_kg: Threshold
    apixaban_scr_min_mg_dl: Threshold
    apixaban_criteria_min_count: Threshold
    rivaroxaban_nvaf_full_dose_crcl_above: Threshold
    rivaroxaban_limited_data_crcl_below: Threshold
    dabigatran_vte_no_dosing_crcl_max: Threshold
    dabigatran_nvaf_full_dose_crcl_above: Threshold
    dabigatran_nvaf_pgp_avoid_crcl_max: Threshold
    dabigatran_vte_pgp_avoid_crcl_below: Threshold
    dabigatran_nvaf_pgp_reduce_crcl_max: Threshold
    edoxaban_nvaf_crcl_max: Threshold
    edoxaban_reduced_dose_crcl_max: Threshold
    edoxaban_vte_weight_max_kg: Threshold
    beers_age_min_years: Threshold


class DrugList(StrictModel):
    """A closed list of lowercase generic names (doac-rules.md 2, A8)."""

    members: tuple[str, ...] = Field(min_length=1)
    source: str = Field(min_length=1)


class DrugLists(StrictModel):
    """Every interaction and duplicate list the engine reads."""

    strong_pgp_cyp3a4_inhibitors: DrugList
    strong_pgp_cyp3a4_inducers: DrugList
    pgp_inducers_dabigatran_edoxaban: DrugList
    dabigatran_pgp_inhibitors: DrugList
    dabigatran_nvaf_reduce_inhibitors: DrugList
    edoxaban_vte_pgp_inhibitors: DrugList
    anticoagulants: DrugList


class DrugInfo(StrictModel):
    """An orderable anticoagulant: RxNorm codes (terminology.md), class, label, inducer list."""

    rxnorm: tuple[str, ...] = Field(min_length=1)
    doac: bool
    label: str = Field(min_length=1)
    inducer_list: str | None


class Regimen(StrictModel):
    """A labelled dose/frequency pair."""

    dose_mg: Decimal = Field(gt=0)
    frequency: Frequency


class PackIndex:
    """Plain look-up tables built once per pack, for the engine's per-evaluation reads.

    Reading a pydantic private attribute goes through ``BaseModel.__getattr__`` and a frozen
    model's nested fields cost a call each; these dicts are what every evaluation reads
    instead (the pack is immutable, so they never go stale)."""

    __slots__ = ("lists", "messages", "rule_order", "suggestion_template", "thresholds")

    def __init__(self, pack: RulePack) -> None:
        self.thresholds: dict[str, Decimal] = {
            name: getattr(pack.thresholds, name).value for name in Thresholds.model_fields
        }
        self.lists: dict[str, frozenset[str]] = {
            name: frozenset(getattr(pack.drug_lists, name).members)
            for name in DrugLists.model_fields
        }
        self.rule_order: dict[str, int] = {key: index for index, key in enumerate(pack.rules)}
        self.messages: dict[str, dict[str, str]] = {
            key: rule.messages.model_dump() for key, rule in pack.rules.items()
        }
        self.suggestion_template: dict[str, str] = pack.suggestion_template.model_dump()

    def _tables(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        # Pydantic compares private attributes too: equal packs have equal tables.
        if not isinstance(other, PackIndex):
            return NotImplemented
        return self._tables() == other._tables()

    __hash__ = None  # type: ignore[assignment]


class RulePack(StrictModel):
    """A versioned, reviewable rule pack; the engine's only source of keys and thresholds."""

    id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    title: str = Field(min_length=1)
    policy_document: str = Field(min_length=1)
    reviewer: str | None
    approved_at: datetime | None
    suggestion_template: Messages
    drugs: dict[Drug, DrugInfo]
    drug_lists: DrugLists
    thresholds: Thresholds
    regimens: dict[Drug, dict[Indication, tuple[Regimen, ...]]]
    rules: dict[str, Rule]

    _index: PackIndex | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_consistency(self) -> RulePack:
        _check_rule_keys(self)
        _check_references(self)
        if self.approved_at is not None and not self.reviewer:
            raise ValueError("an approved pack must name its reviewer")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._index = PackIndex(self)

    @property
    def index(self) -> PackIndex:
        """The pack's look-up tables (built with the pack)."""
        index: PackIndex = self.__pydantic_private__["_index"]  # type: ignore[index]
        return index

    def threshold(self, name: str) -> Decimal:
        """The value of a named threshold (see Thresholds for the names)."""
        return self.index.thresholds[name]

    def drug_list(self, name: str) -> frozenset[str]:
        """The members of a named drug list (see DrugLists for the names)."""
        return self.index.lists[name]

    @property
    def is_approved(self) -> bool:
        return self.approved_at is not None


def _check_rule_keys(pack: RulePack) -> None:
    missing = ENGINE_REASON_KEYS - pack.rules.keys()
    if missing:
        raise ValueError(f"rule pack lacks reason keys the engine emits: {sorted(missing)}")
    unknown = pack.rules.keys() - ENGINE_REASON_KEYS
    if unknown:
        raise ValueError(f"rule pack has reason keys the engine does not know: {sorted(unknown)}")
    for key, rule in pack.rules.items():
        # doac-rules.md 0.2: ATTEST means "cannot be evaluated" and belongs to the data gates only.
        if (rule.severity == "ATTEST") != (key in DATA_GATE_KEYS):
            raise ValueError(f"rule '{key}': ATTEST is reserved for the data-gate keys")


def _check_references(pack: RulePack) -> None:
    if pack.drugs.keys() != ALL_DRUGS:
        raise ValueError(f"rule pack must describe exactly these drugs: {sorted(ALL_DRUGS)}")
    for name in Thresholds.model_fields:
        unknown = set(getattr(pack.thresholds, name).rules) - pack.rules.keys()
        if unknown:
            raise ValueError(f"threshold '{name}' names unknown rules: {sorted(unknown)}")
    for drug, info in pack.drugs.items():
        if info.inducer_list is not None and info.inducer_list not in DrugLists.model_fields:
            raise ValueError(f"drug '{drug}' names an unknown inducer list")
        if info.doac and drug not in pack.regimens:
            raise ValueError(f"DOAC '{drug}' has no labelled regimens")


def parse_rule_pack(data: Mapping[str, Any] | str | bytes) -> RulePack:
    """Validate a pack given as JSON text or an already-parsed mapping."""
    if isinstance(data, str | bytes):
        # Decimal keeps thresholds such as 1.5 exact (doac-rules.md 0.5).
        data = json.loads(data, parse_float=Decimal)
    return RulePack.model_validate(data)


def available_pack_versions() -> tuple[str, ...]:
    """Versions of the packaged DOAC packs, from the file names doac-<version>.json."""
    names = (entry.name for entry in resources.files(RULES_PACKAGE).iterdir())
    return tuple(sorted(n[len("doac-") : -len(".json")] for n in names if n.startswith("doac-")))


def load_rule_pack(version: str = DEFAULT_PACK_VERSION) -> RulePack:
    """Load and validate a packaged pack; the engine's only I/O."""
    if version not in available_pack_versions():
        raise ValueError(f"unknown rule pack version '{version}'")
    text = resources.files(RULES_PACKAGE).joinpath(f"doac-{version}.json").read_text("utf-8")
    return parse_rule_pack(text)
