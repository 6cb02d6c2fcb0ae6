"""The permission matrix in docs/contexts/identity.md is generated from code and cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from clinicos.identity.permissions import Permission, Role, matrix_markdown

IDENTITY_DOC = Path(__file__).resolve().parents[3] / "docs" / "contexts" / "identity.md"
START_MARKER = "<!-- permission-matrix:start -->"
END_MARKER = "<!-- permission-matrix:end -->"
# Markers count only on a line of their own, so the regeneration one-liner quoted in the
# document (which spells them out) is never taken for the block.
BLOCK = re.compile(
    rf"^{re.escape(START_MARKER)}\n(?P<table>.*?)^{re.escape(END_MARKER)}$",
    re.MULTILINE | re.DOTALL,
)
REGENERATE = ".venv/bin/python -c"


def _document() -> str:
    return IDENTITY_DOC.read_text(encoding="utf-8")


def test_identity_doc_permission_matrix_when_compared_with_code_is_identical() -> None:
    blocks = [m.group("table") for m in BLOCK.finditer(_document())]

    assert len(blocks) == 1, "docs/contexts/identity.md needs exactly one permission-matrix block"
    assert blocks[0] == matrix_markdown(), (
        "docs/contexts/identity.md is out of date: regenerate the permission matrix with the "
        "one-liner given next to it"
    )


def test_identity_doc_when_read_tells_how_to_regenerate_the_matrix() -> None:
    document = _document()

    assert REGENERATE in document
    assert "matrix_markdown" in document


def test_matrix_markdown_when_rendered_has_one_row_per_permission_and_column_per_role() -> None:
    lines = matrix_markdown().splitlines()

    header, rows = lines[0], lines[2:]
    assert header == "| permission | " + " | ".join(r.value for r in Role) + " |"
    assert [row.split(" | ")[0] for row in rows] == [f"| `{p.value}`" for p in Permission]
    assert all(row.count("|") == len(Role) + 2 for row in rows)
