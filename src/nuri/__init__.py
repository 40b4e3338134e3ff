"""Nuri: a sovereign-first hybrid AI gateway."""

__version__ = "0.1.0"
