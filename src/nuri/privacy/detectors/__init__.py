"""Detectors, one module per family. Each `detect(text) -> list[Hit]` works on normalised text."""
