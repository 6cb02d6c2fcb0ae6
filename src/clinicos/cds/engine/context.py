"""The per-evaluation context the checks read: normalized order, CrCl, gates, pack look-ups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from clinicos.cds.engine import keys
from clinicos.cds.engine.inputs import Facts, Order
from clinicos.cds.engine.pack import PackIndex, RulePack
from clinicos.cds.engine.renal import Creatinine, cockcroft_gault, is_stale


@dataclass(frozen=True)
class Renal:
    """Fresh renal data: present only when no data gate fired (doac-rules.md 0.2)."""

    crcl: Decimal
    weight_kg: Decimal
    creatinine: Creatinine


@dataclass(frozen=True)
class Finding:
    """A rule that fired, with the dose change that fixes it when there is one."""

    key: str
    dose_mg: Decimal | None = None
    frequency: str | None = None


@dataclass(frozen=True)
class Context:
    """Everything a check may read; built once per evaluation."""

    pack: RulePack
    index: PackIndex
    order: Order
    age_years: int
    is_doac: bool
    facts: Facts
    medications: frozenset[str]
    gates: tuple[str, ...]
    crcl: Decimal | None
    renal: Renal | None

    @property
    def drug(self) -> str:
        return self.order.drug

    @property
    def indication(self) -> str:
        return self.order.indication

    def threshold(self, name: str) -> Decimal:
        return self.index.thresholds[name]

    def has_any(self, list_name: str) -> bool:
        """True when any other medication is on the named pack list."""
        return not self.medications.isdisjoint(self.index.lists[list_name])

    def is_order(self, dose_mg: str, frequency: str) -> bool:
        return self.order.frequency == frequency and self.order.dose_mg == _decimal(dose_mg)

    @property
    def below_crcl_floor(self) -> bool:
        """doac-rules.md 0.2/A6: fresh CrCl <15 on a DOAC (dose-selection rules are skipped)."""
        return (
            self.is_doac
            and self.renal is not None
            and self.renal.crcl < self.threshold("crcl_block_below")
        )


_DECIMALS: dict[str, Decimal] = {}


def _decimal(text: str) -> Decimal:
    """Decimal(text), parsed once per literal (the checks compare with a few fixed doses)."""
    value = _DECIMALS.get(text)
    if value is None:
        value = _DECIMALS[text] = Decimal(text)
    return value


def _creatinine(facts: Facts) -> Creatinine | None:
    if facts.serum_creatinine_mg_dl is not None:
        return Creatinine(facts.serum_creatinine_mg_dl, "mg/dL")
    if facts.serum_creatinine_umol_l is not None:
        return Creatinine(facts.serum_creatinine_umol_l, "umol/L")
    return None


def _gates(facts: Facts, has_scr: bool, pack: RulePack, as_of: date) -> tuple[str, ...]:
    """doac-rules.md 0.4 [policy]: SCr <=90 days, weight <=180 days, DOAC orders only."""
    gates: list[str] = []
    thresholds = pack.index.thresholds
    scr_window = thresholds["creatinine_max_age_days"]
    weight_window = thresholds["weight_max_age_days"]
    if not has_scr:
        gates.append(keys.CREATININE_MISSING)
    elif is_stale(facts.creatinine_measured_at, as_of, scr_window):
        gates.append(keys.CREATININE_STALE)
    if facts.weight_kg is None:
        gates.append(keys.WEIGHT_MISSING)
    elif is_stale(facts.weight_measured_at, as_of, weight_window):
        gates.append(keys.WEIGHT_STALE)
    return tuple(gates)


def build_context(facts: Facts, order: Order, pack: RulePack, as_of: date) -> Context:
    """Compute age, CrCl and the data gates once, for every check to share."""
    age = facts.age_on(as_of)
    is_doac = pack.drugs[order.drug].doac
    creatinine = _creatinine(facts)
    crcl: Decimal | None = None
    if creatinine is not None and facts.weight_kg is not None:
        crcl = cockcroft_gault(
            age_years=age,
            weight_kg=facts.weight_kg,
            female=facts.sex == "female",
            creatinine=creatinine,
        )
    # Warfarin is not CrCl-dosed, so it is never gated (doac-rules.md 0.4).
    gates = _gates(facts, creatinine is not None, pack, as_of) if is_doac else ()
    renal = None
    if crcl is not None and creatinine is not None and facts.weight_kg is not None and not gates:
        renal = Renal(crcl=crcl, weight_kg=facts.weight_kg, creatinine=creatinine)
    return Context(
        pack=pack,
        index=pack.index,
        order=order,
        age_years=age,
        is_doac=is_doac,
        facts=facts,
        medications=frozenset(facts.other_medications) - {order.drug},
        gates=gates,
        crcl=crcl,
        renal=renal,
    )
