"""Independent generators of valid identifiers (formulas from REFERENCE §1) and scan shortcuts."""

from __future__ import annotations

from nuri.privacy.scanner import Scanner

_W = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
SCANNER = Scanner()


def rrn(first12: str, foreign: bool = False) -> str:
    s = sum(int(c) * w for c, w in zip(first12, _W, strict=True))
    return first12 + str(((13 if foreign else 11) - s % 11) % 10)


def brn(first9: str) -> str:
    w = (1, 3, 7, 1, 3, 7, 1, 3)
    s = sum(int(c) * k for c, k in zip(first9[:8], w, strict=True)) + int(first9[8]) * 5 + int(first9[8]) * 5 // 10
    return first9 + str((10 - s % 10) % 10)


def crn(first12: str) -> str:
    s = sum(int(c) * (1 if i % 2 == 0 else 2) for i, c in enumerate(first12))
    return first12 + str((10 - s % 10) % 10)


def luhn(prefix: str) -> str:
    for c in "0123456789":
        n = prefix + c
        total = 0
        for i, ch in enumerate(reversed(n)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return n
    raise AssertionError("unreachable")


def dashed(d: str, *groups: int) -> str:
    out, i = [], 0
    for g in groups:
        out.append(d[i:i + g])
        i += g
    return "-".join(out)


def found(text: str, scanner: Scanner = SCANNER) -> list[tuple[str, str]]:
    """(type, original substring) for each entity: what a user sees."""
    return [(e.type, text[e.start:e.end]) for e in scanner.scan(text)]


def types(text: str, scanner: Scanner = SCANNER) -> set[str]:
    return {e.type for e in scanner.scan(text)}
