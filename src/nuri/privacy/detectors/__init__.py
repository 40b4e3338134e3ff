"""Detectors, one module per family, each declaring its entity types and how it runs (spec.py);
registry.py lists them. Each `detect(text) -> list[Hit]` works on normalised text."""
