"""clinicos: open-source clinical operations platform."""
