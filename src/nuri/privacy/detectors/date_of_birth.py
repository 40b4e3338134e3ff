"""Dates of birth: a real calendar date right after a birth label (생년월일, 출생, DOB, born …).
A date without such a label is an ordinary date and is not reported."""

from __future__ import annotations

import datetime as _dt
import re

from nuri.privacy import surrogates
from nuri.privacy.detectors.base import Hit, valid_date
from nuri.privacy.detectors.spec import EntityKind, Registration
from nuri.privacy.types import Evidence, PipaCategory

_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_MON = r"(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE = (
    r"(?P<y>(?:19|20)\d{2})\s?(?:[-./]|년)\s?(?P<m>\d{1,2})\s?(?:[-./]|월)\s?(?P<d>\d{1,2})(?:\s?일)?"
    r"|(?P<yy>\d{2})(?P<mm>0[1-9]|1[0-2])(?P<dd>0[1-9]|[12]\d|3[01])(?!\d)"
    r"|(?P<m2>\d{1,2})[/.-](?P<d2>\d{1,2})[/.-](?P<y2>(?:19|20)\d{2})"
    rf"|{_MON}\s(?P<d3>\d{{1,2}}),?\s(?P<y3>(?:19|20)\d{{2}})"
    r"|(?P<d4>\d{1,2})\s(?P<mon4>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s(?P<y4>(?:19|20)\d{2})"
)
_LABEL = (
    r"생년월일|(?<!발)(?<!재)(?<!회)생일|출생일|출생|생년|태어난\s?날|태어남|"
    r"(?<![A-Za-z])(?:date of birth|birth\s?date|birthday|d\.?o\.?b\.?|born(?: on)?)(?![A-Za-z])"
)
_BORN_SUFFIX = re.compile(rf"(?<!\d)(?P<date>{_DATE})\s?생(?![가-힣])", re.IGNORECASE)   # 1981.06.17생
_DOB = re.compile(rf"(?:{_LABEL})\s*(?:은|는|이|:|：|-|=)?\s*(?:[^\d]{{0,40}}?)(?=[\djfmasond])(?<!\d)(?P<date>{_DATE})(?!\d)", re.IGNORECASE)


def _ymd(m: re.Match[str]) -> tuple[int, int, int] | None:
    g = m.groupdict()
    if g["y"]:
        return int(g["y"]), int(g["m"]), int(g["d"])
    if g["yy"]:
        yy = int(g["yy"])
        return (2000 + yy if yy <= 30 else 1900 + yy), int(g["mm"]), int(g["dd"])
    if g["y2"]:
        return int(g["y2"]), int(g["m2"]), int(g["d2"])
    if g["y3"]:
        return int(g["y3"]), _MONTHS[g["mon"][:3].lower()], int(g["d3"])
    if g["y4"]:
        return int(g["y4"]), _MONTHS[g["mon4"][:3].lower()], int(g["d4"])
    return None


# Cheap substring checks place the regexes: most text has no birth label at all, so `_DOB` is only
# tried where a label starts (each hint found by `str.find` on the lower-cased text; "date of birth"
# starts 8 characters before its hint), and the "…생" form only before a digit + "생" (학생, 발생,
# 생각 … are common).
_LABEL_HINTS = ("생년", "생일", "출생", "태어", "birth", "dob", "d.o.b", "born")
_DATE_OF = len("date of ")
_SUFFIX_WINDOW = 32


def _label_starts(text: str, lower: str) -> list[int]:
    if len(lower) != len(text):        # a rare character changed length: offsets would not agree
        return [m.start() for m in _DOB.finditer(text)] if any(h in lower for h in _LABEL_HINTS) else []
    found: list[int] = []
    for hint in _LABEL_HINTS:
        i = lower.find(hint)
        while i >= 0:
            found.append(i)
            if hint == "birth" and i >= _DATE_OF:
                found.append(i - _DATE_OF)
            i = lower.find(hint, i + 1)
    return found


def _suffix_positions(text: str) -> list[int]:
    """Where "생" follows a digit (optionally one space between) and ends the word: 1981.06.17생."""
    out = []
    pos = text.find("생")
    while pos >= 0:
        j = pos - 1 if pos and not text[pos - 1].isspace() else pos - 2
        if j >= 0 and text[j].isdigit() and not (pos + 1 < len(text) and "가" <= text[pos + 1] <= "힣"):
            out.append(pos)
        pos = text.find("생", pos + 1)
    return out


def _matches(text: str, lower: str) -> list[tuple[re.Match[str], int]]:
    found: list[tuple[re.Match[str], int]] = []
    for start in _label_starts(text, lower):
        m = _DOB.match(text, start)
        if m:
            found.append((m, 0))
    for pos in _suffix_positions(text):
        start = max(0, pos - _SUFFIX_WINDOW)
        while start > 0 and text[start - 1].isdigit():   # never cut a number: (?<!\d) must see it whole
            start -= 1
        window = text[start:pos + 2]
        found += [(m, start) for m in _BORN_SUFFIX.finditer(window) if m.end() >= len(window) - 2]
    return found


def detect(text: str, lowered: str | None = None) -> list[Hit]:
    """Dates of birth in `text`; pass `lowered` (``text.lower()``) when the caller already has it."""
    hits: list[Hit] = []
    seen: set[tuple[int, int]] = set()
    today: _dt.date | None = None        # read only when a date needs it: most texts hold none
    for m, offset in _matches(text, text.lower() if lowered is None else lowered):
        ymd = _ymd(m)
        if ymd is None:
            continue
        if not valid_date(*ymd):
            if not (m.group("y2") and valid_date(ymd[0], ymd[2], ymd[1])):
                continue  # D/M/Y is tried when M/D/Y is not a date
            ymd = (ymd[0], ymd[2], ymd[1])
        today = today or _dt.date.today()
        if _dt.date(*ymd) > today:
            continue  # nobody is born in the future
        span = (offset + m.start("date"), offset + m.end("date"))
        if span not in seen:
            seen.add(span)
            hits.append(Hit("DATE_OF_BIRTH", span[0], span[1], 0.9, Evidence.CONTEXT))
    return hits


DATE_OF_BIRTH = EntityKind("DATE_OF_BIRTH", PipaCategory.PERSONAL, surrogates.date_of_birth)
REGISTRATION = Registration("date_of_birth", (DATE_OF_BIRTH,), detect, lowered=True)
