"""The configuration table in docs/operations.md is generated from Settings and cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinicos.platform.config_docs import (
    END_MARKER,
    START_MARKER,
    configuration_table,
    extract_block,
    iter_all_fields,
    iter_settings,
    main,
    replace_block,
)

OPERATIONS_DOC = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def test_operations_doc_table_when_compared_with_settings_is_identical() -> None:
    document = OPERATIONS_DOC.read_text(encoding="utf-8")

    block = extract_block(document)

    assert block == configuration_table(), (
        "docs/operations.md is out of date: run `.venv/bin/python -m clinicos.platform.config_docs`"
    )


def test_settings_fields_when_listed_all_have_descriptions() -> None:
    missing = [path for path, info in iter_all_fields() if not (info.description or "").strip()]

    assert missing == [], f"Settings fields without description=: {missing}"


def test_configuration_table_when_rendered_has_one_row_per_leaf_setting() -> None:
    table = configuration_table()

    rows = table.splitlines()[2:]

    assert len(rows) == len(list(iter_settings()))
    assert any(row.startswith("| `CLINICOS_DATABASE_URL` |") for row in rows)
    assert any(row.startswith("| `CLINICOS_OUTBOX__MAX_ATTEMPTS` |") for row in rows)
    assert all(row.count(" | ") == 3 for row in rows)  # four cells, no stray pipe


def test_configuration_table_when_rendered_masks_the_development_secret() -> None:
    from clinicos.config import DEV_SECRET_KEY

    table = configuration_table()

    assert DEV_SECRET_KEY not in table
    assert "| `CLINICOS_SECRET_KEY` | secret string | (development default) |" in table


def test_main_when_block_is_stale_rewrites_only_the_block(tmp_path: Path) -> None:
    doc = tmp_path / "operations.md"
    doc.write_text(f"before\n{START_MARKER}\nold table\n{END_MARKER}\nafter\n", encoding="utf-8")

    changed = main(doc)

    text = doc.read_text(encoding="utf-8")
    assert changed is True
    assert text.startswith("before\n") and text.endswith("after\n")
    assert extract_block(text) == configuration_table()
    assert main(doc) is False  # a second run finds nothing to change


def test_replace_block_when_markers_missing_raises_value_error() -> None:
    with pytest.raises(ValueError):
        replace_block("no markers here", "table")
