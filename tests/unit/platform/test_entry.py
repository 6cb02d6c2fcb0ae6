"""The ``clinicos`` command's entry point pauses the garbage collector only while importing."""

from __future__ import annotations

import gc
import sys

import pytest

import clinicos.cli
from clinicos import entry


def test_entry_runs_the_cli_with_the_collector_on_and_leaves_it_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(clinicos.cli, "main", lambda: seen.append(gc.isenabled()))
    try:
        entry.main()
    finally:
        gc.unfreeze()  # this test process keeps collecting what it imported

    assert seen == [True]
    assert gc.isenabled()


def test_entry_turns_the_collector_back_on_when_the_import_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "clinicos.cli", None)  # importing it now raises

    with pytest.raises(ImportError):
        entry.main()

    assert gc.isenabled()
