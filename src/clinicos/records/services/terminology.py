"""The code systems the record stores codes of, and how to tell a well-formed code: plain
functions over plain data (no database), shared by the use cases and tests.

Sources: LOINC Users' Guide (mod-10 check digit), SNOMED CT Technical Implementation Guide
§6 (SCTID partition and Verhoeff check digit), WHO ATC structure, ../shared/clinical/
terminology.md for the codes decision support reads."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from clinicos.kernel.errors import FieldError

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"

_ICD10 = r"[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?"  # the 3rd character admits ICD-10-CM's C4A, Z3A


def is_loinc_code(code: str) -> bool:
    """``NNNNN-C``: up to 7 digits, a hyphen and LOINC's mod-10 (Luhn) check digit."""
    if re.fullmatch(r"[0-9]{1,7}-[0-9]", code) is None:
        return False
    payload, check = code.split("-")
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10 == int(check)


_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def is_snomed_concept_id(code: str) -> bool:
    """A SNOMED CT concept id: 6-18 digits, partition ``00`` (core) or ``10`` (extension) in
    the 2nd-3rd digits from the right, and a valid Verhoeff check digit."""
    if re.fullmatch(r"[1-9][0-9]{5,17}", code) is None or code[-3:-1] not in ("00", "10"):
        return False
    check = 0
    for position, char in enumerate(reversed(code)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(char)]]
    return check == 0


def is_icd10_code(code: str) -> bool:
    return re.fullmatch(_ICD10, code) is not None


def is_rxnorm_code(code: str) -> bool:
    """An RxCUI: a positive integer."""
    return re.fullmatch(r"[1-9][0-9]{0,9}", code) is not None


def is_atc_code(code: str) -> bool:
    """An ATC code of any level: A, A10, A10B, A10BA, A10BA02."""
    return re.fullmatch(r"[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?", code) is not None


CODE_SHAPES: dict[str, Callable[[str], bool]] = {
    LOINC: is_loinc_code,
    SNOMED: is_snomed_concept_id,
    ICD10: is_icd10_code,
    RXNORM: is_rxnorm_code,
    ATC: is_atc_code,
}


def code_problem(system: str, code: str, field: str = "code") -> FieldError | None:
    """Why ``code`` is not a code of ``system``; None when it is, or when the system is one
    whose codes are not checked here (a local ``urn:`` system, say)."""
    shape = CODE_SHAPES.get(system)
    if shape is None or shape(code):
        return None
    return FieldError((field,), f"not a valid code of {system}", "code_invalid")


def normalise_unit(unit: str | None) -> str | None:
    """UCUM codes are ASCII: the micro sign some systems send (µ U+00B5, μ U+03BC) is ``u``."""
    if unit is None:
        return None
    return unit.strip().replace("\u00b5", "u").replace("\u03bc", "u")


def plain_decimal(value: Decimal | None) -> Decimal | None:
    """``72.5000000000`` (SQLite's float round trip) → ``72.5``; ``1E+2`` → ``100``. A
    number too large to write out in the context's 28 digits (``1E+308``) stays as it is:
    ``magnitude_problem`` refuses it."""
    if value is None:
        return None
    value = value.normalize()
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent <= 0:
        return value
    try:
        return value.quantize(Decimal(1))
    except InvalidOperation:
        return value


# What the JSON API's schemas accept (records/clinical_schemas.py Measurement and Dose): the
# FHIR facade and imports reach the same use cases without those schemas.
MEASUREMENT_INTEGER_DIGITS = 9
DOSE_INTEGER_DIGITS = 8


def magnitude_problem(
    value: Decimal | None, loc: tuple[str | int, ...], integer_digits: int
) -> FieldError | None:
    """Why ``value`` cannot be stored: not finite, or more than ``integer_digits`` digits
    before the decimal point (SQLite would keep it as a float, or as infinity); None if it can."""
    if value is None:
        return None
    if not value.is_finite():
        return FieldError(loc, "must be a finite number", "decimal")
    if value != 0 and value.adjusted() >= integer_digits:
        return FieldError(loc, f"at most {integer_digits} digits before the decimal point", "range")
    return None
