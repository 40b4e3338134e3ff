"""The decoded view: personal data written encoded, as percent-encoding, base64, hex, HTML
entities or escapes (``hong%40example.com``, ``MDEwLTIzNDUtNjc4OQ==``, ``&#64;``, ``\\u0040``).

`decode(text)` is None when nothing in the text looks encoded, the common case, decided by
substring tests and scans that run at C speed. Otherwise each encoded run is
replaced by the text it decodes to, and every decoded character maps back to the whole run: a
hit anywhere inside it covers the run, so masking removes every trace of it. Decoded text that
is itself encoded (base64 of percent-encoding) is decoded once more; the result is folded like
the plain view (`normalize`), and the maps are composed, so spans refer to the text as given.

Bare runs (base64, hex) are only taken when they decode to valid UTF-8 that reads as text:
mostly printable, with letters or digits. Ordinary words, hashes, UUIDs and keys decode to
bytes that are not UTF-8, or are not tried at all.
"""

from __future__ import annotations

import base64
import binascii
import html
import re

from nuri.privacy.normalize import Normalized, Segment, compose, normalize

_LEVELS = 2                      # base64 of percent-encoding: decoded twice, no further

# Runs introduced by a literal character: percent-encoded bytes, HTML character references
# (named, decimal, hex), \u escapes (JSON, JavaScript: surrogate pairs, braces) and \x escapes.
# Every branch opens with its literal, so the engine skips to '%', '&' or '\'.
_PCT = r"%[0-9A-Fa-f]{2}"
_ENTITY = r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
# One or more backslashes: an escape inside a JSON string inside a JSON string (tool-call
# arguments) arrives as \\u0040, and reads as the same character.
_UESC = r"\\+(?:u[0-9A-Fa-f]{4}|u\{[0-9A-Fa-f]{1,6}\}|U[0-9A-Fa-f]{8})"
_XESC = r"\\+x[0-9A-Fa-f]{2}"
_ESCAPED = re.compile("|".join(f"{one}(?:{one})*" for one in (_PCT, _ENTITY, _UESC, _XESC)))
_CODE_POINT = re.compile(r"\\[uU]\{?([0-9A-Fa-f]+)\}?")

# Base64 and hex of text mix letters and digits. A run is found from an anchor in it: a digit or a
# capital right after a small letter, a capital after a digit, a digit after a capital (not
# inside an ordinary number or acronym), with a few more run characters after it, or seven
# hex-coded digits or spaces in a row (3x3x20…). Prose has few such spots.
_ANCHOR = re.compile(r"[0-9A-Z](?<=[a-z][0-9A-Z]|[0-9][A-Z]|[A-Z][0-9])(?=[A-Za-z0-9+/_\-]{3})")
_HEX_DIGITS = re.compile(r"3[0-9](?:3[0-9]|20){6}")
# The engine pays for every position it tries an anchor at: texts full of numbers have many digits,
# English has many small letters. So the check runs on the ASCII characters mapped to their kind
# (digit '0', capital 'A', small letter 'a'), from whichever of the two is rarer.
_KINDS = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                         b"0" * 10 + b"A" * 26 + b"a" * 26)
_ANCHOR_KINDS = re.compile(rb"a(?=[0A][a0A+/_\-]{3})|A(?:(?<=0A)(?=[a0A+/_\-]{3})|(?=0[a0A+/_\-]{3}))")
_HEX_RUN_KINDS = b"0" * 14
_RUN_CHARS = re.compile(r"[A-Za-z0-9+/_\-]*")
_PADDING = re.compile(r"={0,2}")
_BACK = 256                      # how far one step looks back for the start of a run
_MIN_BARE = 8                    # characters of a bare run: 4 bytes of hex, 6 of base64
_MIN_BASE64 = 12
_MAX_PATH = 512                  # a run split at slashes is a URL path, not a blob
_HEX = re.compile(r"[0-9A-Fa-f]+")
_BASE64_SHAPE = re.compile(r"[0-9+/_\-]|[a-z][A-Z]")
_LETTER = re.compile(r"[A-Za-z]")
_URLSAFE = str.maketrans("-_", "+/")


def decode(text: str, folded: Normalized | None = None) -> Normalized | None:
    """The decoded view of `text`, or None when it holds no encoded run. `folded` is
    `normalize(text)` when the caller has it: runs are looked for in the folded view, so
    invisible characters or fullwidth forms inside a run do not hide it."""
    view = folded if folded is not None else normalize(text)
    if not _hinted(view.text):
        return None
    decoded = _decode_once(view.text)
    if decoded is None:
        return None
    for _ in range(_LEVELS - 1):
        again = _decode_once(decoded.text) if _hinted(decoded.text) else None
        if again is None:
            break
        decoded = compose(decoded, again)
    return compose(compose(view, decoded), normalize(decoded.text))


def _hinted(text: str) -> bool:
    """Whether anything in `text` can be an encoded run (substring tests and C-level scans)."""
    if ("%" in text or "&" in text or "\\" in text) and _ESCAPED.search(text):
        return True
    kinds = text.encode("ascii", "ignore").translate(_KINDS)
    if _HEX_RUN_KINDS in kinds and _HEX_DIGITS.search(text):
        return True
    if kinds.count(b"a") <= kinds.count(b"0") + kinds.count(b"A"):
        return _ANCHOR_KINDS.search(kinds) is not None      # tried at small letters and capitals
    return _ANCHOR.search(text) is not None                 # tried at digits and capitals


def _decode_once(text: str) -> Normalized | None:
    """`text` with every encoded run replaced by its decoded text; None if no run decoded."""
    runs = _runs(text)
    if not runs:
        return None
    out: list[str] = []
    segments: list[Segment] = []
    pos = n = 0
    for start, end, decoded in runs:
        if start > pos:
            out.append(text[pos:start])
            segments.append(Segment(n, n + start - pos, pos, start, True))
            n += start - pos
        out.append(decoded)
        segments.append(Segment(n, n + len(decoded), start, end, False))
        n += len(decoded)
        pos = end
    if pos < len(text):
        out.append(text[pos:])
        segments.append(Segment(n, n + len(text) - pos, pos, len(text), True))
    return Normalized("".join(out), segments)


def _runs(text: str) -> list[tuple[int, int, str]]:
    """(start, end, decoded text) of every run that decodes, sorted and not overlapping."""
    found = _escaped_runs(text) + _bare_runs(text)
    found.sort()
    out: list[tuple[int, int, str]] = []
    for run in found:
        if run[2] and (not out or run[0] >= out[-1][1]):
            out.append(run)
    return out


def _escaped_runs(text: str) -> list[tuple[int, int, str]]:
    if not ("%" in text or "&" in text or "\\" in text):
        return []
    out = []
    for m in _ESCAPED.finditer(text):
        run = m.group()
        kind = "\\" + run.lstrip("\\")[0] if run[0] == "\\" else run[0]
        decoded = _ESCAPE_DECODERS[kind](run)
        if decoded is not None and decoded != m.group():
            out.append((m.start(), m.end(), decoded))
    return out


def _bare_runs(text: str) -> list[tuple[int, int, str]]:
    """Base64 and hex runs that decode, each found from the first anchor inside it."""
    runs: dict[int, int] = {}
    m = _ANCHOR.search(text)
    while m:
        start, end = _run_around(text, m.start())
        runs[start] = end
        m = _ANCHOR.search(text, max(end, m.end()))
    for m in _HEX_DIGITS.finditer(text):
        start, end = _run_around(text, m.start())
        runs[start] = end
    out = []
    for start, end in sorted(runs.items()):
        if end - start >= _MIN_BARE:
            out += _decoded_pieces(text, start, end)
    return out


def _run_around(text: str, i: int) -> tuple[int, int]:
    """The run of base64 characters (with its '=' padding) that holds position `i`."""
    start = i
    while start > 0:               # backwards, a slice at a time, as a blob can be long
        back = _RUN_CHARS.match(text[max(0, start - _BACK):start][::-1])
        step = back.end() if back else 0
        start -= step
        if step < _BACK:
            break
    run = _RUN_CHARS.match(text, i)
    end = run.end() if run else i
    padding = _PADDING.match(text, end)
    return start, padding.end() if padding else end


def _decoded_pieces(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """The run decoded whole or, failing that, its pieces between slashes (a token at the end
    of a URL path)."""
    decoded = _bare(text[start:end])
    if decoded is not None:
        return [(start, end, decoded)]
    out = []
    if "/" in text[start:end] and end - start <= _MAX_PATH:
        pos = start
        for piece in text[start:end].split("/"):
            if len(piece) >= _MIN_BASE64:
                decoded = _bare(piece)
                if decoded is not None:
                    out.append((pos, pos + len(piece), decoded))
            pos += len(piece) + 1
    return out


def _bare(run: str) -> str | None:
    """A run of base64 characters as hex (``0x``-prefixed or bare) or as base64."""
    core = run.rstrip("=")
    if core[:2] in ("0x", "0X") and _HEX.fullmatch(core, 2):
        return _hex(core[2:])
    if _HEX.fullmatch(core):
        decoded = _hex(core)
        if decoded is not None:
            return decoded
    if len(core) >= _MIN_BASE64 and _BASE64_SHAPE.search(core) and _LETTER.search(core):
        return _base64(core)
    return None


def _hex(digits: str) -> str | None:
    """Hex digits as UTF-8 text; four bytes at least, so short numbers are never read as hex."""
    if len(digits) < _MIN_BARE or len(digits) % 2:
        return None
    return _text(bytes.fromhex(digits), 2)


def _base64(core: str) -> str | None:
    """Standard or URL-safe base64, padding optional; never both alphabets in one run."""
    if len(core) % 4 == 1 or (any(c in core for c in "-_") and any(c in core for c in "+/")):
        return None
    try:
        raw = base64.b64decode(core.translate(_URLSAFE) + "=" * (-len(core) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _text(raw, 8) or _short_text(raw)


def _short_text(raw: bytes) -> str | None:
    """A short run read as text only when it is letters outside ASCII (a Korean name is three
    syllables, nine bytes): random bytes are almost never valid multi-byte UTF-8."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = [c for c in s if not c.isascii() and c.isalpha()]
    return s if len(letters) >= 2 and len(letters) * 2 >= len(s) and s.isprintable() else None


def _text(raw: bytes, min_chars: int) -> str | None:
    """`raw` as UTF-8 if it reads as text: at least `min_chars` characters, 90 % of them
    printable, a quarter letters or digits."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(s) < min_chars:
        return None
    printable = sum(map(str.isprintable, s)) + s.count("\n") + s.count("\t") + s.count("\r")
    alnum = sum(map(str.isalnum, s))
    return s if printable * 10 >= len(s) * 9 and alnum * 4 >= len(s) else None


def _percent(run: str) -> str | None:
    try:
        return bytes.fromhex(run.replace("%", "")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _html(run: str) -> str | None:
    return html.unescape(run)


def _u_escapes(run: str) -> str | None:
    """\\uXXXX code units (surrogate pairs joined), \\u{…} and \\UXXXXXXXX code points."""
    units: list[int] = []
    for m in _CODE_POINT.finditer(run):
        cp = int(m.group(1), 16)
        if cp > 0x10FFFF:
            return None
        if cp > 0xFFFF:
            cp -= 0x10000
            units += [0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)]
        else:
            units.append(cp)
    raw = b"".join(u.to_bytes(2, "little") for u in units)
    return raw.decode("utf-16-le", "replace")


def _x_escapes(run: str) -> str | None:
    """\\xNN escapes: UTF-8 bytes (C, Python bytes) or, failing that, code points (JavaScript)."""
    raw = bytes.fromhex(run.replace("\\", "").replace("x", ""))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_ESCAPE_DECODERS = {"%": _percent, "&": _html, "\\u": _u_escapes, "\\U": _u_escapes, "\\x": _x_escapes}
