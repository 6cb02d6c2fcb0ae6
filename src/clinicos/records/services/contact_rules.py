"""What a phone number and an email address must look like, wherever the record takes them.

The JSON API (records/schemas.py), the FHIR facade (interop/fhir/patient.py) and data-subject
corrections (data_subject.py) all write the same columns: one rule, kept here."""

from __future__ import annotations

import re

from pydantic import EmailStr, TypeAdapter, ValidationError

PHONE_PATTERN = r"^\+?[0-9 ()./-]+$"
PHONE_MIN, PHONE_MAX = 4, 32
EMAIL_MAX = 254
_EMAIL = TypeAdapter(EmailStr)


def is_phone(value: str) -> bool:
    return PHONE_MIN <= len(value) <= PHONE_MAX and re.fullmatch(PHONE_PATTERN, value) is not None


def is_email(value: str) -> bool:
    if len(value) > EMAIL_MAX:
        return False
    try:
        _EMAIL.validate_python(value)
    except ValidationError:
        return False
    return True
