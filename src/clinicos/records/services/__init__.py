"""Record use cases, one module per family; ``common`` holds what they share."""
