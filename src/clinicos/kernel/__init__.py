"""Kernel: ids, clock, error and event bases, the unit-of-work contract. Imports no context."""
