"""Versioned DOAC rule-pack data files (JSON), loaded by clinicos.cds.engine.pack."""
