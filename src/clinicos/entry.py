"""The ``clinicos`` command's entry point: import the application with the cyclic garbage
collector paused, then freeze what was imported.

Importing clinicos builds thousands of long-lived objects (SQLAlchemy tables and mappers,
pydantic validators, FastAPI routes); the collector's passes over them while they are being
built cost ~0.4 s of a ~2.3 s import on the 2-core reference machine (docs/benchmarks.md, cold
start). None of them is garbage, so the pause loses nothing. ``gc.freeze()`` then moves them to
the permanent generation, so later full collections, during requests, no longer walk them
(the technique CPython documents for gc.freeze). The collector is on again before any command
runs. Only this entry point does it: importing ``clinicos.cli`` (tests, other programs) leaves
the collector alone."""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    try:
        from clinicos.cli import main as cli_main
    finally:
        gc.enable()
    gc.freeze()
    cli_main()
