"""Reversible pseudonymisation of one conversation: value → typed placeholder → value.

Within one `Pseudonymizer` the same value always gets the same placeholder (`<PERSON_1>`,
`<PHONE_2>`), so a model can still reason about "the same customer" without seeing who it is;
replies are mapped back with `restore_text` (or `StreamRestorer` for streams). With `surrogates`
on, values are replaced by fake but well-formed values of the same shape (surrogates.py:
`010-0000-0001`, `user1@example.com`), chosen so they do not collide with real values in the
conversation and so they can be found again in the reply.

Unique identifiers (`irreversible_types`, by default RRN and FRN: PIPA Art. 24-2 forbids
processing RRNs without a statute) become `<KR_RRN_REDACTED>` and are never restored.

The mapping is personal data (PIPA Art. 2: pseudonymised data is still personal data). It lives in
this object's memory only: `repr` shows counts, pickling is refused, and nothing is logged.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol, cast

from nuri.privacy import fields as _fields
from nuri.privacy.detectors.registry import fold, make_surrogate
from nuri.privacy.surrogates import ZERO_WIDTH
from nuri.privacy.types import Entity

PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)>")
REDACTED_RE = re.compile(r"<([A-Z][A-Z0-9_]*)_REDACTED>")
_ANY_MARKER_RE = re.compile(r"<[A-Z][A-Z0-9_]*_(?:\d+|REDACTED)>")
_NAME_OK = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
_SEPARATORS_RE = re.compile(r"[\s\-.()/]+")
_SPACES_RE = re.compile(r"\s+")
_SWEEP_MIN_CHARS = 3


def _is_identifier_field(path: tuple[Any, ...]) -> bool:
    """A message `name` or a function name: upstreams accept only ^[A-Za-z0-9_-]{1,64}$ there."""
    if not path or path[-1] != "name":
        return False
    return (len(path) == 3 and path[0] == "messages") or (len(path) >= 2 and path[-2] == "function")


class SupportsScan(Protocol):
    def scan(self, text: str) -> list[Entity]: ...


def value_key(entity_type: str, value: str) -> str:
    """How two spellings of one value compare: NFKC, no zero-width, and for number-like types
    no separators (`010-1234-5678` and `01012345678` are one phone number): the type's `fold`."""
    v = unicodedata.normalize("NFKC", value).translate(ZERO_WIDTH).strip()
    how = fold(entity_type)
    if how == "digits":
        return _SEPARATORS_RE.sub("", v)
    if how == "lower":
        return v.lower()
    return _SPACES_RE.sub(" ", v)


def marker_spans(text: str) -> list[tuple[int, int]]:
    """Spans of placeholders and redaction markers already in a text (never masked again)."""
    return [m.span() for m in _ANY_MARKER_RE.finditer(text)]


def redacted(entity_type: str) -> str:
    return f"<{entity_type}_REDACTED>"


class Pseudonymizer:
    """One per conversation or request; holds the value ↔ placeholder mapping in memory only."""

    __slots__ = ("_by_key", "_counters", "_irreversible", "_keys_re", "_originals", "_reserved",
                 "_surrogates", "_types_of", "_version")

    def __init__(
        self,
        settings: Any = None,
        *,
        surrogates: bool | None = None,
        irreversible_types: Iterable[str] | None = None,
    ) -> None:
        """`settings` is a `PrivacySettings` (or None for defaults); keyword arguments override it."""
        if surrogates is None:
            surrogates = bool(getattr(settings, "surrogates", False))
        if irreversible_types is None:
            irreversible_types = getattr(settings, "irreversible_types", None)
            if irreversible_types is None:
                irreversible_types = ("KR_RRN", "KR_FRN")
        self._surrogates = surrogates
        self._irreversible = frozenset(irreversible_types)
        self._by_key: dict[tuple[str, str], str] = {}     # (type, value key) → token
        self._originals: dict[str, str] = {}              # token → original value
        self._types_of: dict[str, str] = {}               # token → entity type
        self._counters: dict[str, int] = {}
        self._reserved: set[str] = set()                  # placeholder-shaped strings seen in input
        self._keys_re: re.Pattern[str] | None = None
        self._version = 0

    # -- what may be shown -------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Pseudonymizer(mapped={len(self._originals)}, surrogates={self._surrogates})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Pseudonymizer mapping is personal data and is never serialised")

    def __copy__(self) -> Pseudonymizer:
        raise TypeError("a Pseudonymizer mapping is not copied")

    def __deepcopy__(self, memo: dict[int, Any]) -> Pseudonymizer:
        raise TypeError("a Pseudonymizer mapping is not copied")

    @property
    def surrogates(self) -> bool:
        return self._surrogates

    @property
    def irreversible_types(self) -> frozenset[str]:
        return self._irreversible

    @property
    def placeholders(self) -> dict[str, str]:
        """token → entity type (no values): safe to log or count."""
        return dict(self._types_of)

    @property
    def mapping(self) -> Mapping[str, str]:
        """token → original value, read-only; for restoration inside the request only."""
        return MappingProxyType(self._originals)

    @property
    def sent_values(self) -> set[str]:
        """The original values behind the tokens: the reply guard treats them as sent."""
        return set(self._originals.values())

    @property
    def version(self) -> int:
        """Grows whenever a token is added, so stream restorers know to refresh their tables."""
        return self._version

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self._types_of.values():
            out[t] = out.get(t, 0) + 1
        return out

    def __len__(self) -> int:
        return len(self._originals)

    # -- masking ----------------------------------------------------------------------------
    def token_for(self, entity_type: str, value: str) -> str:
        """The placeholder (or surrogate, or redaction marker) for a value; allocates if new."""
        if entity_type in self._irreversible:
            return redacted(entity_type)
        if value in self._originals:         # already a token of ours (idempotence)
            return value
        key = (entity_type, value_key(entity_type, value))
        token = self._by_key.get(key)
        if token is not None:
            return token
        n = self._counters.get(entity_type, 0)
        while True:
            n += 1
            token = self._surrogate(entity_type, value, n) if self._surrogates else f"<{entity_type}_{n}>"
            if (token not in self._originals and token not in self._reserved and token != value
                    and not self._is_original(token)):
                break
        self._counters[entity_type] = n
        self._by_key[key] = token
        self._originals[token] = value
        self._types_of[token] = entity_type
        self._keys_re = None
        self._version += 1
        return token

    def _is_original(self, token: str) -> bool:
        return any(v == token for v in self._originals.values())

    def reserve(self, text: str, values: Iterable[str] = ()) -> None:
        """Remember placeholder-shaped strings the client wrote itself and the values about to be
        masked, so no token is ever allocated equal to either (restoring a reply must not turn
        the client's own literal `<PERSON_1>` into a value, and a surrogate must not shadow a real
        value)."""
        for m in PLACEHOLDER_RE.finditer(text):
            if m.group(0) not in self._originals:
                self._reserved.add(m.group(0))
        for v in values:
            if v not in self._originals:
                self._reserved.add(v)

    def mask_text(self, text: str, entities: Iterable[Entity], types: set[str] | None = None) -> str:
        """Replace the given entities (offsets into `text`) by their tokens.

        Entities overlapping an existing placeholder or marker are skipped, so masking an already
        masked text changes nothing. Known values that the scanner did not flag again are masked
        too (a name detected once is masked everywhere in the conversation)."""
        spans = self._plan(text, entities, types)
        self.reserve(text, (text[s:e] for s, e, _t in spans))
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        for start, end, etype in spans:
            out.append(text[pos:start])
            out.append(self.token_for(etype, text[start:end]))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def _plan(
        self, text: str, entities: Iterable[Entity], types: set[str] | None
    ) -> list[tuple[int, int, str]]:
        blocked = marker_spans(text)
        cands: list[tuple[int, int, str]] = []
        for e in entities:
            if types is not None and e.type not in types:
                continue
            if not (0 <= e.start < e.end <= len(text)):
                continue
            if any(e.start < b1 and b0 < e.end for b0, b1 in blocked):
                continue
            cands.append((e.start, e.end, e.type))
        cands.extend(self._sweep(text, types, blocked))
        cands.sort(key=lambda c: (c[0], -(c[1] - c[0])))
        chosen: list[tuple[int, int, str]] = []
        last_end = -1
        for c in cands:
            if c[0] >= last_end:
                chosen.append(c)
                last_end = c[1]
        return chosen

    def _sweep(
        self, text: str, types: set[str] | None, blocked: list[tuple[int, int]]
    ) -> list[tuple[int, int, str]]:
        if not self._originals:
            return []
        found: list[tuple[int, int, str]] = []
        for token, value in self._originals.items():
            etype = self._types_of[token]
            if len(value) < _SWEEP_MIN_CHARS or (types is not None and etype not in types):
                continue
            start = text.find(value)
            while start >= 0:
                end = start + len(value)
                if not any(start < b1 and b0 < end for b0, b1 in blocked):
                    found.append((start, end, etype))
                start = text.find(value, end)
        return found

    def mask_request(
        self,
        body: dict[str, Any],
        endpoint: str,
        scanner: SupportsScan,
        types: set[str] | None = None,
    ) -> dict[str, Any]:
        """A new request body with every text field (fields.request_texts) masked."""
        return self.mask_texts(body, list(_fields.request_texts(body, endpoint)), scanner, types)

    def mask_texts(
        self,
        body: dict[str, Any],
        texts: list[tuple[_fields.Path, str]],
        scanner: SupportsScan,
        types: set[str] | None = None,
    ) -> dict[str, Any]:
        """A new `body` with its walked `texts` (path, text) masked: the gateway walks a request
        once and passes the texts here.

        Two passes: every field is scanned and its values registered first, then every field is
        rewritten, so a value detected in a later message is also masked where it appeared
        earlier without being detected."""
        found: dict[str, list[Entity]] = {}
        todo: list[tuple[str, str]] = []
        for _path, text in texts:
            if text in found:
                continue
            ents = scanner.scan(text)
            found[text] = ents
            blocked = marker_spans(text)
            for e in ents:
                if types is not None and e.type not in types:
                    continue
                if any(e.start < b1 and b0 < e.end for b0, b1 in blocked):
                    continue
                if 0 <= e.start < e.end <= len(text):
                    todo.append((e.type, text[e.start:e.end]))
            self.reserve(text, (v for _t, v in todo))
        for etype, value in todo:
            self.token_for(etype, value)
        changes = []
        for path, text in texts:
            if path[-1] == "arguments" and (masked_json := self._mask_json(text, scanner, types)) is not None:
                if masked_json != text:
                    changes.append((path, masked_json))
                continue
            mask = self._mask_name if _is_identifier_field(path) else self.mask_text
            masked = mask(text, found.get(text, ()), types)
            if masked != text:
                changes.append((path, masked))
        return _fields.apply(body, changes)

    def _mask_json(self, text: str, scanner: SupportsScan, types: set[str] | None) -> str | None:
        """Tool-call arguments are JSON: mask the strings inside it, so a placeholder stands for
        the value itself rather than its escaped spelling, and comes back right in either a JSON
        or a plain field. None when the text is not a JSON object or array."""
        if not text.lstrip().startswith(("{", "[")):
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict | list):
            return None
        inner = _fields.walk(data)[0]
        changes = [(p, m) for p, t in inner if (m := self.mask_text(t, scanner.scan(t), types)) != t]
        if not changes:
            return text
        return json.dumps(_fields.apply(cast("dict[str, Any]", data), changes), ensure_ascii=False)  # lists too

    def _mask_name(self, text: str, entities: Iterable[Entity], types: set[str] | None) -> str:
        masked = self.mask_text(text, entities, types)
        return masked if masked == text else self._name_safe(masked)

    def _name_safe(self, masked: str) -> str:
        """A message `name` must match ^[A-Za-z0-9_-]{1,64}$ upstream: tokens lose their brackets
        (<PERSON_1> → PERSON_1); a name left with no allowed character becomes `user`."""
        if _NAME_OK.fullmatch(masked):
            return masked
        safe = _NAME_BAD.sub("", _ANY_MARKER_RE.sub(lambda m: m.group(0)[1:-1], masked))[:64]
        return safe or "user"

    # -- restoring --------------------------------------------------------------------------
    def token_pattern(self) -> re.Pattern[str] | None:
        """One compiled alternation of every token, longest first (None while there is none)."""
        if not self._originals:
            return None
        if self._keys_re is None:
            keys = sorted(self._originals, key=len, reverse=True)
            self._keys_re = re.compile("|".join(re.escape(k) for k in keys))
        return self._keys_re

    def restore_text(self, text: str, *, json_escape: bool = False) -> str:
        """Tokens back to values; unknown placeholders and redaction markers stay as they are.
        `json_escape` for text inside a JSON string (tool-call arguments)."""
        pat = self.token_pattern()
        if pat is None or not text:
            return text
        originals = self._originals
        if json_escape:
            return pat.sub(lambda m: json.dumps(originals[m.group(0)], ensure_ascii=False)[1:-1], text)
        return pat.sub(lambda m: originals[m.group(0)], text)

    # -- surrogates -------------------------------------------------------------------------
    def _surrogate(self, etype: str, value: str, n: int) -> str:
        return make_surrogate(etype, value, n)
