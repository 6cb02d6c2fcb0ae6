"""Console pages: audit."""

from __future__ import annotations

from fastapi import APIRouter

from clinicos.console.session import COOKIE_PATH

router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False)
