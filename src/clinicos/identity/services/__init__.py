"""Identity use cases, one module per family."""
