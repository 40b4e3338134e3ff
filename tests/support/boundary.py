"""The privacy boundary, cell by cell: does personal data reach a model only as far as policy allows?

One grid, shared by `bench/boundary.py` (every cell) and `tests/gateway/test_boundary.py` (a reduced
grid for CI), so the benchmark's table and the tests judge the same cells the same way.

Request path. A value of one identifier family (an RRN, a phone number, …) is written in a natural
cue sentence, encoded one way (plain, percent, base64, HTML entities, look-alike letters, …) and put
at one site of an OpenAI request (a message, a tool schema, `metadata`, an unknown key, an object
key, …), or split across two text parts or two messages. The request goes through a real
`nuri serve` whose alias `default` prefers the foreign deployment `us` over the domestic `kr`. The
cell leaks when the recording upstream `us` received the value in any recoverable form: as placed,
decoded, normalised (width, digits, dashes, format characters, look-alikes), as its digits, or as a
piece of four characters or more. Served by `kr` (policy moved it) or refused with 403 is not a leak.

Reply path. The upstream is scripted (`upstream_server` reply shapes). Echo: it sends back the
placeholders it received, and the client must get its own values back byte-exact (fidelity).
Inject: it puts values the client never sent into a reply carrier (content, refusal, tool-call
arguments, an unknown key, logprobs tokens), whole or streamed with a chunk boundary at every
position of the value; the cell leaks when the client can recover the value.

Every request carries a marker word (`nurimark…`) so concurrent cells can be told apart at the
upstreams and each can get its own scripted reply.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import html
import html.entities
import json
import re
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from support.processes import GatewayProcess, upstream_deployment
from support.upstream_server import ECHO, PLACEHOLDER_RE, RunningUpstream

# --- identifier families ------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One identifier family: a well-formed value, the sentence it is written in, how it splits."""

    id: str
    value: str
    template: str                    # "{v}" is where the (encoded) value goes
    reversible: bool = True          # irreversible types are redacted, never restored
    digits: bool = False             # a number: its digits alone identify it

    @property
    def digit_string(self) -> str:
        return "".join(c for c in self.value if c.isdigit())

    def text(self, placed: str) -> str:
        return self.template.replace("{v}", placed)

    def halves(self) -> tuple[str, str]:
        """The sentence before and after the value."""
        before, _, after = self.template.partition("{v}")
        return before, after

    def splits(self) -> dict[str, tuple[str, str]]:
        """Ways to cut the value in two: at the separator nearest its middle ("sep"; the middle
        character when it has none), and for numbers the bare digits cut in the middle ("digits")."""
        v = self.value
        seps = [i for i, c in enumerate(v) if not c.isalnum()]
        mid = len(v) / 2
        at = min(seps, key=lambda i: (abs(i - mid), i)) if seps else len(v) // 2
        out = {"sep": (v[:at], v[at:])}
        if self.digits and len(self.digit_string) >= 8 and not any(c.isalpha() for c in v):
            d = self.digit_string
            k = (len(d) + 1) // 2
            out["digits"] = (d[:k], d[k:])
        return out


def _frn(front: str) -> str:
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    digits = front.replace("-", "")
    check = (13 - sum(int(c) * w for c, w in zip(digits, weights, strict=True)) % 11) % 10
    return f"{front}{check}"


FAMILIES: dict[str, Family] = {f.id: f for f in [
    Family("KR_RRN", "900101-1234568", "주민등록번호는 {v} 입니다.", reversible=False, digits=True),
    Family("KR_FRN", _frn("900101-523456"), "외국인등록번호는 {v} 입니다.", reversible=False, digits=True),
    Family("PHONE", "010-2345-6789", "연락처는 {v} 입니다.", digits=True),
    Family("EMAIL", "hong.gildong@example.co.kr", "메일 주소는 {v} 입니다."),
    Family("CARD", "4111-1111-1111-1111", "카드번호 {v} 로 결제했습니다.", digits=True),
    Family("BANK_ACCOUNT", "110-123-456789", "신한은행 계좌 {v} 로 입금해 주세요.", digits=True),
    Family("KR_PASSPORT", "M12345678", "여권번호는 {v} 입니다.", digits=True),
    Family("US_SSN", "123-45-6789", "My SSN is {v}.", digits=True),
    Family("PERSON", "홍길동", "고객 {v}님께 안내 문자를 보내 주세요."),
]}

# --- encodings ----------------------------------------------------------------------------------

_NAMED: dict[str, str] = {}
for _name, _char in sorted(html.entities.html5.items(), key=lambda kv: (len(kv[0]), kv[0])):
    if len(_char) == 1 and _name.endswith(";") and _name[0].islower() and _char.isascii() and not _char.isalnum():
        _NAMED.setdefault(_char, f"&{_name}")

# Cyrillic and Greek letters whose Unicode confusable skeleton (UTS #39) is the Latin letter
_LOOKALIKE = str.maketrans({"a": "а", "e": "е", "o": "ο", "c": "с", "p": "р", "i": "і", "x": "х", "y": "у",
                            "h": "һ", "r": "г", "d": "ԁ"})


def _percent(v: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "".join(f"%{b:02X}" for b in c.encode()) for c in v)


def _fullwidth(v: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in v)


def _arabic_indic(v: str) -> str:
    return "".join(chr(0x660 + int(c)) if c.isascii() and c.isdigit() else c for c in v)


@dataclass(frozen=True)
class Encoding:
    """A way a client (or an attacker) may write a value; `applies` limits it to some families."""

    id: str
    encode: Callable[[str], str]
    applies: Callable[[Family], bool] = lambda f: True


ENCODINGS: dict[str, Encoding] = {e.id: e for e in [
    Encoding("plain", lambda v: v),
    Encoding("percent", _percent),
    Encoding("base64", lambda v: base64.b64encode(v.encode()).decode()),
    Encoding("base64url", lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("=")),
    Encoding("hex", lambda v: v.encode().hex()),
    Encoding("html-decimal", lambda v: "".join(f"&#{ord(c)};" for c in v)),
    Encoding("html-named", lambda v: "".join(_NAMED.get(c, c) for c in v)),
    Encoding("json-u", lambda v: "".join(f"\\u{ord(c):04x}" for c in v)),
    Encoding("isolate-around", lambda v: f"\u2066{v}\u2069"),
    Encoding("isolate-inside", lambda v: "".join(f"\u2066{c}\u2069" for c in v)),
    Encoding("cgj", lambda v: "\u034f".join(v)),
    Encoding("arabic-indic", _arabic_indic, lambda f: f.digits),
    Encoding("em-dash", lambda v: v.replace("-", "\u2014"), lambda f: f.digits),
    Encoding("fullwidth", _fullwidth),
    Encoding("lookalike", lambda v: v.translate(_LOOKALIKE), lambda f: f.id == "EMAIL"),
]}


def encode(encoding: str, family: Family) -> str | None:
    """The value as placed, or None when the encoding does not apply (or changes nothing)."""
    enc = ENCODINGS[encoding]
    if not enc.applies(family):
        return None
    placed = enc.encode(family.value)
    return placed if encoding == "plain" or placed != family.value else None


# --- request sites ------------------------------------------------------------------------------

ASK = "위 내용을 정리해 주세요."


def _user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _tool(description: str = "고객 정보를 조회합니다.", prop: dict[str, Any] | None = None,
          props: dict[str, Any] | None = None) -> dict[str, Any]:
    properties = props if props is not None else {"query": {"type": "string", **(prop or {})}}
    return {"type": "function", "function": {"name": "lookup", "description": description,
                                             "parameters": {"type": "object", "properties": properties}}}


def _call(arguments: str) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": arguments}}]}


SITES: dict[str, Callable[[str], dict[str, Any]]] = {
    "user": lambda t: {"messages": [_user(t)]},
    "text-part": lambda t: {"messages": [_user([{"type": "text", "text": "다음 내용을 확인해 주세요."},
                                                {"type": "text", "text": t}])]},
    "system": lambda t: {"messages": [{"role": "system", "content": t}, _user(ASK)]},
    "assistant": lambda t: {"messages": [_user("이전 상담 내용"), {"role": "assistant", "content": t}, _user(ASK)]},
    "tool": lambda t: {"messages": [_user("고객 조회"), _call('{"id": 7}'),
                                    {"role": "tool", "tool_call_id": "call_1", "content": t}, _user(ASK)]},
    "name": lambda t: {"messages": [{"role": "user", "name": t, "content": "안녕하세요"}]},
    "tool-arguments": lambda t: {"messages": [_user("고객 조회"), _call(json.dumps({"note": t}, ensure_ascii=False)),
                                              {"role": "tool", "tool_call_id": "call_1", "content": "조회 완료"}]},
    "tool-description": lambda t: {"messages": [_user(ASK)], "tools": [_tool(t)]},
    "param-description": lambda t: {"messages": [_user(ASK)], "tools": [_tool(prop={"description": t})]},
    "param-enum": lambda t: {"messages": [_user(ASK)], "tools": [_tool(prop={"enum": [t, "기타"]})]},
    "param-default": lambda t: {"messages": [_user(ASK)], "tools": [_tool(prop={"default": t})]},
    "param-examples": lambda t: {"messages": [_user(ASK)], "tools": [_tool(prop={"examples": [t]})]},
    "response-format": lambda t: {"messages": [_user(ASK)], "response_format": {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": {
            "type": "object", "description": t, "properties": {"summary": {"type": "string"}}}}}},
    "metadata": lambda t: {"messages": [_user(ASK)], "metadata": {"note": t}},
    "user-field": lambda t: {"messages": [_user(ASK)], "user": t},
    "prediction": lambda t: {"messages": [_user(ASK)], "prediction": {"type": "content", "content": t}},
    "unknown-key": lambda t: {"messages": [_user(ASK)], "x_note": t},
    "unknown-nested": lambda t: {"messages": [_user(ASK)], "x_context": {"case": {"customer": {"note": t}}}},
    "key-metadata": lambda t: {"messages": [_user(ASK)], "metadata": {t: "확인"}},
    "key-schema": lambda t: {"messages": [_user(ASK)], "tools": [_tool(props={t: {"type": "string"}})]},
}

SPLIT_SITES: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "split-parts": lambda a, b: {"messages": [_user([{"type": "text", "text": a}, {"type": "text", "text": b}])]},
    "split-messages": lambda a, b: {"messages": [_user(a), _user(b)]},
}

# --- reply carriers -----------------------------------------------------------------------------

CARRIERS = ("content", "refusal", "tool_arguments", "unknown_key", "logprobs")
_CARRIER_FIELD = {"unknown_key": "x_note"}
# where each carrier's text is found in what the client receives (list indices as "*")
_CARRIER_PATHS = {
    "content": {"choices/*/message/content", "choices/*/delta/content"},
    "refusal": {"choices/*/message/refusal", "choices/*/delta/refusal"},
    "tool_arguments": {"choices/*/message/tool_calls/*/function/arguments",
                       "choices/*/delta/tool_calls/*/function/arguments"},
    "unknown_key": {"x_note"},
    "logprobs": {"choices/*/logprobs/content/*/token"},
}
INJECT_ASK = "담당자 안내 문구를 작성해 주세요."
ECHO_TEXT = f"확인했습니다: {ECHO} 로 안내드리겠습니다."

# --- cells --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestCell:
    """A value of `family`, encoded, at one request site (or split across two)."""

    family: str
    site: str
    encoding: str          # an ENCODINGS id, or for split sites the split kind ("sep", "digits")

    @property
    def id(self) -> str:
        return f"req:{self.family}:{self.site}:{self.encoding}"

    @property
    def split(self) -> bool:
        return self.site in SPLIT_SITES


@dataclass(frozen=True)
class ReplyCell:
    """A value in one reply carrier: echoed from placeholders, or injected by the upstream."""

    family: str
    kind: str              # echo | inject
    carrier: str
    cut: int | str | None  # None: whole reply; an offset into the value (or placeholder); "each"

    @property
    def stream(self) -> bool:
        return self.cut is not None

    @property
    def mode(self) -> str:
        return "whole" if self.cut is None else f"stream@{self.cut}"

    @property
    def id(self) -> str:
        return f"reply:{self.kind}:{self.family}:{self.carrier}:{self.mode}"


Cell = RequestCell | ReplyCell


def request_cells(families: Iterable[str], sites: Iterable[str], encodings: Iterable[str]) -> list[RequestCell]:
    out = []
    for fam in families:
        for site in sites:
            for enc in encodings:
                if encode(enc, FAMILIES[fam]) is not None:
                    out.append(RequestCell(fam, site, enc))
    return out


def split_cells(families: Iterable[str]) -> list[RequestCell]:
    return [RequestCell(fam, site, kind) for fam in families for site in SPLIT_SITES
            for kind in FAMILIES[fam].splits()]


def _cut_target(family: Family, kind: str) -> str:
    """What a streamed cut position counts into: the value, or the placeholder the echo returns."""
    return family.value if kind == "inject" else f"<{family.id}_1>"


def reply_cells(families: Iterable[str], kinds: Iterable[str] = ("echo", "inject"),
                carriers: Iterable[str] = CARRIERS, every_position: Iterable[str] = CARRIERS) -> list[ReplyCell]:
    """Whole replies, and streams cut at every position (for `every_position` carriers) or at a
    few (start, inside, middle, end) plus one character per chunk."""
    out: list[ReplyCell] = []
    every = set(every_position)
    for fam in families:
        for kind in kinds:
            n = len(_cut_target(FAMILIES[fam], kind))
            for carrier in carriers:
                cuts: list[int | str | None] = [None]
                cuts += list(range(n + 1)) if carrier in every else sorted({0, 1, n // 2, n - 1, n})
                cuts.append("each")
                out.extend(ReplyCell(fam, kind, carrier, c) for c in cuts)
    return out


CI_FAMILIES = ("KR_RRN", "PHONE", "EMAIL")


def ci_grid() -> list[Cell]:
    """The reduced grid run in CI: every site (plain) and every encoding (user message) for three
    families, both splits, and the reply carriers for PHONE and EMAIL."""
    cells: list[Cell] = []
    cells += request_cells(CI_FAMILIES, SITES, ["plain"])
    cells += request_cells(CI_FAMILIES, ["user"], [e for e in ENCODINGS if e != "plain"])
    cells += split_cells(CI_FAMILIES)
    cells += reply_cells(["PHONE", "EMAIL"], every_position=["content"])
    return cells


def full_grid() -> list[Cell]:
    cells: list[Cell] = []
    cells += request_cells(FAMILIES, SITES, ENCODINGS)
    cells += split_cells(FAMILIES)
    cells += reply_cells(FAMILIES)
    return cells


# --- building requests --------------------------------------------------------------------------


def marker(index: int) -> str:
    """A word the gateway has no reason to touch, unique per cell: `nurimark` + letters."""
    letters = ""
    n = index
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            break
    return "nurimark" + letters


def placed_value(cell: RequestCell) -> str:
    family = FAMILIES[cell.family]
    if cell.split:
        return "".join(family.splits()[cell.encoding])
    placed = encode(cell.encoding, family)
    assert placed is not None, cell.id
    return placed


def request_body(cell: RequestCell, mark: str) -> dict[str, Any]:
    """The request for a cell (without `model`), ending with a user message carrying the marker."""
    family = FAMILIES[cell.family]
    if cell.split:
        a, b = family.splits()[cell.encoding]
        before, after = family.halves()
        body = SPLIT_SITES[cell.site](before + a, b + after)
    else:
        body = SITES[cell.site](family.text(placed_value(cell)))
    body["messages"] = [*body["messages"], _user(f"참조 {mark}")]
    return body


def reply_plan(cell: ReplyCell) -> tuple[str, dict[str, Any]]:
    """The user message that asks, and the upstream's reply plan for a reply cell."""
    family = FAMILIES[cell.family]
    if cell.kind == "echo":
        ask = family.text(family.value) + " 이 내용으로 안내 문구를 작성해 주세요."
        text, anchor = ECHO_TEXT, ECHO
    else:
        ask = INJECT_ASK
        text, anchor = family.text(family.value), family.value
    if cell.carrier == "tool_arguments":
        text = json.dumps({"note": text}, ensure_ascii=False)
    plan: dict[str, Any] = {"reply_fields": {_CARRIER_FIELD.get(cell.carrier, cell.carrier): text}}
    if cell.carrier == "logprobs" or cell.cut is not None:
        n = len(_cut_target(family, cell.kind))
        plan["cuts"] = "each" if cell.cut == "each" else [cell.cut] if cell.cut is not None else [0, n]
        plan["cut_anchor"] = anchor
    return ask, plan


_SDK_PARAMS = {"messages", "tools", "response_format", "metadata", "user", "prediction", "stream"}


def sdk_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """`chat.completions.create` keyword arguments: known fields as such, the rest in extra_body."""
    known = {k: v for k, v in body.items() if k in _SDK_PARAMS}
    extra = {k: v for k, v in body.items() if k not in _SDK_PARAMS}
    return {**known, **({"extra_body": extra} if extra else {})}


# --- recovering values from what was seen -------------------------------------------------------

_CONFUSABLE = str.maketrans({
    "а": "a", "е": "e", "о": "o", "с": "c", "р": "p", "і": "i", "х": "x", "у": "y", "ӏ": "l", "ԁ": "d",
    "м": "m", "г": "r", "к": "k", "ո": "n", "ɡ": "g", "ο": "o", "κ": "k", "α": "a", "ε": "e", "ι": "i",
    "ν": "v", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ѕ": "s", "ј": "j", "һ": "h", "ԛ": "q", "ԝ": "w",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "Α": "A", "Β": "B", "Ε": "E", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T",
})
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}){4,}")
_U_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_STRUCTURAL = {"role", "type", "model", "id", "tool_call_id", "object", "finish_reason"}


def normalise(text: str) -> str:
    """What a reader (or a model) makes of a text: NFKC, no format characters or grapheme joiners,
    every decimal digit as ASCII, every dash as '-', look-alike letters as Latin."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat == "Cf" or ch == "\u034f":
            continue
        if cat == "Nd":
            out.append(str(unicodedata.decimal(ch)))
        elif cat == "Pd" or ch == "\u2212":
            out.append("-")
        else:
            out.append(ch)
    return "".join(out).translate(_CONFUSABLE)


def _decodings(text: str) -> Iterator[str]:
    """The text with each supported encoding undone (one level)."""
    if "&" in text:
        yield html.unescape(text)
    if "%" in text:
        yield urllib.parse.unquote(text, errors="replace")
    if "\\u" in text:
        yield _U_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    for m in _B64_RUN.finditer(text):
        run = m.group(0).rstrip("=")
        for alt in (b"+/", b"-_"):
            with contextlib.suppress(binascii.Error, ValueError, UnicodeDecodeError):
                yield base64.b64decode(run + "=" * (-len(run) % 4), altchars=alt, validate=True).decode()
    for m in _HEX_RUN.finditer(text):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            yield bytes.fromhex(m.group(0)).decode()


def _walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path, string) for every string of a JSON value, keys included; a string that is itself a
    JSON object or array (tool-call arguments) is walked too; a list of byte values is decoded."""
    if isinstance(node, str):
        yield path, node
        if node[:1] in "{[":
            with contextlib.suppress(ValueError):
                inner = json.loads(node)
                if isinstance(inner, dict | list):
                    yield from _walk(inner, (*path, "json"))
    elif isinstance(node, dict):
        for k, v in node.items():
            yield (*path, "key"), str(k)
            yield from _walk(v, (*path, str(k)))
    elif isinstance(node, list):
        if node and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 256 for x in node):
            yield path, bytes(node).decode("utf-8", errors="replace")
            return
        for i, v in enumerate(node):
            yield from _walk(v, (*path, str(i)))


def _shape(path: tuple[str, ...]) -> str:
    return "/".join("*" if p.isdigit() else p for p in path)


@dataclass
class Seen:
    """Everything one party received, as texts a reader could recover a value from."""

    raws: list[str] = field(default_factory=list)          # bodies as sent on the wire
    texts: list[str] = field(default_factory=list)         # every JSON string, keys included
    joined: dict[str, str] = field(default_factory=dict)   # per field shape: pieces in order

    @classmethod
    def of(cls, raws: Iterable[str], documents: Iterable[Any] = ()) -> Seen:
        seen = cls()
        parts: dict[str, list[str]] = {}
        seen.raws.extend(raws)
        for doc in documents:
            for path, text in _walk(doc):
                seen.texts.append(text)
                if path and path[-1] not in _STRUCTURAL and path[-1] != "key":
                    parts.setdefault(_shape(path), []).append(text)
        # a value split across messages, parts or chunks reads whole to whoever reads them in order
        seen.joined = {shape: "".join(texts) for shape, texts in parts.items()}
        return seen

    def views(self) -> Iterator[tuple[str, str]]:
        """(where, text) for every text, decoded and normalised."""
        done: set[str] = set()
        sources = [("raw", t) for t in self.raws] + [("string", t) for t in self.texts]
        sources += [(f"joined {k}", t) for k, t in self.joined.items()]
        for where, text in sources:
            for variant in (text, *_decodings(text)):
                for view in (variant, normalise(variant)):
                    if view not in done:
                        done.add(view)
                        yield where, view


def needles(family: Family, placed: str | None = None) -> list[str]:
    """Strings whose presence means the value is recoverable: the value, its form as placed, and
    every piece of four characters or more it can be split into."""
    out = [family.value]
    if placed and placed != family.value:
        out.append(placed)
    for a, b in family.splits().values():
        out += [p for p in (a, b) if len(p) >= 4]
    return list(dict.fromkeys(out))


def find_value(seen: Seen, family: Family, placed: str | None = None) -> str | None:
    """Where the value can be recovered from what was seen (a short description), or None."""
    wanted = needles(family, placed)
    digits = family.digit_string if family.digits and len(family.digit_string) >= 6 else None
    for where, view in seen.views():
        for needle in wanted:
            i = view.find(needle)
            if i >= 0:
                return f"{needle!r} in {where}: …{view[max(0, i - 24):i + len(needle) + 24]}…"
        if digits and where != "raw":      # raw bodies hold unrelated numbers (ids, counts, bytes)
            bare = "".join(c for c in view if c.isdigit())
            if digits in bare:
                return f"digits {digits} in {where}: …{view[:80]}…"
    return None


# --- running cells ------------------------------------------------------------------------------


@dataclass
class CellResult:
    """One cell's verdict. outcome: us | kr | 403 | error …; leak: the value was recoverable where
    it must not be; fidelity: 1.0 / 0.0, or None where it does not apply."""

    id: str
    outcome: str
    leak: bool | None
    fidelity: float | None = None
    masked: bool = False
    domestic_saw: bool | None = None   # served by kr: did kr get the value (the check is not blind)
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.leak is False and self.fidelity in (None, 1.0)

    def explain(self) -> str:
        parts = [f"outcome={self.outcome}", f"leak={self.leak}", f"fidelity={self.fidelity}"]
        return ", ".join(parts) + (f": {self.detail}" if self.detail else "")


@dataclass
class Boundary:
    """A running setup: the gateway and the two recording upstreams."""

    gateway: GatewayProcess
    kr: RunningUpstream
    us: RunningUpstream


def boundary_config(kr: RunningUpstream, us: RunningUpstream) -> dict[str, Any]:
    """`default` prefers the foreign `us`; anything on `kr` was moved there by policy. `abroad` is
    foreign only; `open` starts with a foreign deployment the operator tagged for unscanned content."""
    return {
        "deployments": [
            upstream_deployment(us, "us", jurisdiction="US", hosting="foreign_cloud"),
            upstream_deployment(kr, "kr", jurisdiction="KR", hosting="on_prem"),
            upstream_deployment(us, "us-open", jurisdiction="US", hosting="foreign_cloud",
                                tags=["unscanned-content-abroad"]),
        ],
        "aliases": {"default": ["us", "kr"], "abroad": ["us"], "open": ["us-open", "kr"]},
        "policy": {"packs": ["kr-pipa"]},
        "routing": {"retries": 1, "backoff_seconds": 0, "breaker_failures": 1000, "breaker_reset_seconds": 0.2},
        "ledger": {"enabled": False},
    }


def reset_upstream(server: RunningUpstream) -> None:
    """Default behaviour plus the echo: the reply carries the placeholders the request held."""
    server.reset()
    server.state.reply_fields = {"content": f"ECHO: {ECHO}"}


@contextlib.contextmanager
def running_boundary(workdir: Path) -> Iterator[Boundary]:
    with RunningUpstream() as kr, RunningUpstream() as us:
        for server in (kr, us):
            reset_upstream(server)
        with GatewayProcess(workdir, boundary_config(kr, us)) as gw:
            yield Boundary(gw, kr, us)


def _by_marker(server: RunningUpstream) -> dict[str, list[str]]:
    pattern = re.compile(server.state.marker_pattern)
    out: dict[str, list[str]] = {}
    for raw in server.received_bodies():
        for m in set(pattern.findall(raw)):
            out.setdefault(m, []).append(raw)
    return out


def _documents(raws: Iterable[str]) -> list[Any]:
    docs = []
    for raw in raws:
        with contextlib.suppress(ValueError):
            docs.append(json.loads(raw))
    return docs


def _client_strings(body: dict[str, Any]) -> list[str]:
    return [t for _, t in _walk(body)]


@dataclass
class _Sent:
    status: int = 0
    deployment: str = ""
    reply: Any = None
    raw: str = ""
    events: list[Any] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


async def _send_request_cell(client: openai.AsyncOpenAI, body: dict[str, Any]) -> _Sent:
    out = _Sent()
    t0 = time.perf_counter()
    try:
        raw = await client.chat.completions.with_raw_response.create(model="default", **sdk_arguments(body))
        out.status = raw.http_response.status_code
        out.deployment = raw.headers.get("x-nuri-deployment", "")
        out.raw = raw.http_response.text
        out.reply = raw.http_response.json()
    except openai.APIStatusError as exc:
        out.status = exc.status_code
        out.error = exc.message
    except (openai.APIError, httpx.HTTPError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - t0
    return out


async def _send_raw(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> _Sent:
    out = _Sent()
    t0 = time.perf_counter()
    try:
        resp = await http.post(url, json=body)
        out.status = resp.status_code
        out.deployment = resp.headers.get("x-nuri-deployment", "")
        out.raw = resp.text
        if body.get("stream") and resp.status_code == 200:
            for line in out.raw.splitlines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    with contextlib.suppress(ValueError):
                        out.events.append(json.loads(line[5:]))
        else:
            with contextlib.suppress(ValueError):
                out.reply = resp.json()
                out.events = [out.reply]
        if resp.status_code != 200:
            out.error = out.raw[:300]
    except httpx.HTTPError as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - t0
    return out


_JUDGED = ("us", "kr", "403", "direct")
# a placeholder or redaction marker, also bare (a message `name` cannot hold angle brackets)
_MASKED = re.compile(r"\b[A-Z][A-Z0-9_]*_(?:\d+|REDACTED)\b")


def _outcome(sent: _Sent) -> str:
    """us | kr (the gateway's x-nuri-deployment), 403, direct (no gateway in between), or an error."""
    if sent.status == 403:
        return "403"
    if sent.status == 200:
        return sent.deployment or "direct"
    return f"error {sent.status or ''} {sent.error[:120]}".strip()


def _judge_request(cell: RequestCell, body: dict[str, Any], sent: _Sent, us_raws: list[str],
                   kr_raws: list[str]) -> CellResult:
    family = FAMILIES[cell.family]
    placed = placed_value(cell)
    outcome = _outcome(sent)
    us_docs = _documents(us_raws)
    masked = any(_MASKED.search(raw) for raw in us_raws)
    result = CellResult(cell.id, outcome, leak=None, masked=masked, seconds=sent.seconds)
    where = find_value(Seen.of(us_raws, us_docs), family, None if cell.split else placed) if us_raws else None
    if where is not None:
        result.leak, result.detail = True, f"us received it: {where}"
    elif outcome in _JUDGED:
        result.leak = False
    else:
        result.detail = sent.error
    if outcome == "kr":
        kr_seen = Seen.of(kr_raws, _documents(kr_raws))
        result.domestic_saw = find_value(kr_seen, family, None if cell.split else placed) is not None
    restorable = any(PLACEHOLDER_RE.search(raw) for raw in us_raws)
    if outcome == "us" and restorable and family.reversible:
        result.fidelity, why = _echo_fidelity(sent.reply, body, None if cell.split else placed)
        if why:
            result.detail = (result.detail + "; " if result.detail else "") + why
    return result


def _echo_fidelity(reply: Any, body: dict[str, Any], placed: str | None) -> tuple[float, str]:
    """1.0 when the echoed placeholders came back as the client's own text, byte-exact."""
    try:
        content = reply["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return 0.0, "no echo in the reply"
    left = PLACEHOLDER_RE.findall(content)
    if left:
        return 0.0, f"placeholders left in the reply: {left}"
    pieces = [p for p in content.removeprefix("ECHO: ").split(" | ") if p]
    sent = _client_strings(body)
    foreign = [p for p in pieces if not any(p in s for s in sent)]
    if foreign:
        return 0.0, f"restored text the client never sent: {foreign}"
    # the masked span may be the value as placed or lie within it (isolates around it stay put)
    if placed is not None and not any(placed in p or p in placed for p in pieces):
        return 0.0, f"the value as sent did not come back; got {pieces}"
    return 1.0, ""


def _judge_reply(cell: ReplyCell, sent: _Sent, us_raws: list[str]) -> CellResult:
    family = FAMILIES[cell.family]
    outcome = _outcome(sent)
    masked = any(_MASKED.search(raw) for raw in us_raws)
    result = CellResult(cell.id, outcome, leak=None, masked=masked, seconds=sent.seconds)
    if outcome not in _JUDGED:
        result.detail = sent.error
        return result
    client = Seen.of([sent.raw], sent.events)
    if cell.kind == "inject":
        where = find_value(client, family)
        result.leak = where is not None
        result.detail = f"the client received it: {where}" if where else ""
        return result
    where = find_value(Seen.of(us_raws, _documents(us_raws)), family) if us_raws else None
    result.leak = where is not None
    if where:
        result.detail = f"us received it: {where}"
    if outcome == "us" and any(PLACEHOLDER_RE.search(raw) for raw in us_raws) and family.reversible:
        channel = "".join(client.joined.get(p, "") for p in sorted(_CARRIER_PATHS[cell.carrier]))
        left = sorted({m for t in client.texts for m in PLACEHOLDER_RE.findall(t)})
        if left:
            result.fidelity, why = 0.0, f"placeholders left in the reply: {left}"
        elif family.value not in channel:
            result.fidelity, why = 0.0, f"the value did not come back in {cell.carrier}: {channel[:120]!r}"
        else:
            result.fidelity, why = 1.0, ""
        if why:
            result.detail = (result.detail + "; " if result.detail else "") + why
    return result


async def run_cells(setup: Boundary, cells: list[Cell], concurrency: int = 8,
                    via: str | None = None) -> dict[str, CellResult]:
    """Send every cell through the gateway (at most `concurrency` at once), then judge each on what
    the upstreams received and what the client got back. `via`: another base URL to send to, such
    as `us` itself, where every cell must leak: the checks are shown not to be blind."""
    base_url = via or setup.gateway.base_url
    for server in (setup.kr, setup.us):
        reset_upstream(server)
    marks = {cell.id: marker(i) for i, cell in enumerate(cells)}
    bodies: dict[str, dict[str, Any]] = {}
    for cell in cells:
        mark = marks[cell.id]
        if isinstance(cell, RequestCell):
            bodies[cell.id] = request_body(cell, mark)
        else:
            ask, plan = reply_plan(cell)
            for server in (setup.kr, setup.us):
                server.state.plans[mark] = plan
            bodies[cell.id] = {"messages": [_user(f"{ask} 참조 {mark}")], "stream": cell.stream}
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sent: dict[str, _Sent] = {}
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-boundary", max_retries=0,  # the SDK
                                    timeout=30, http_client=http)  # type: ignore[arg-type]  # types its vendored httpx


        async def one(cell: Cell) -> None:
            async with sem:
                body = bodies[cell.id]
                if isinstance(cell, RequestCell):
                    sent[cell.id] = await _send_request_cell(client, body)
                else:
                    sent[cell.id] = await _send_raw(http, base_url + "/chat/completions",
                                                    {"model": "default", **body})

        await asyncio.gather(*(one(c) for c in cells))
    us_seen, kr_seen = _by_marker(setup.us), _by_marker(setup.kr)
    results: dict[str, CellResult] = {}
    for cell in cells:
        mark = marks[cell.id]
        us_raws = us_seen.get(mark, [])
        if isinstance(cell, RequestCell):
            results[cell.id] = _judge_request(cell, bodies[cell.id], sent[cell.id], us_raws, kr_seen.get(mark, []))
        else:
            results[cell.id] = _judge_reply(cell, sent[cell.id], us_raws)
    return results


def run_grid(setup: Boundary, cells: list[Cell], concurrency: int = 8,
             via: str | None = None) -> dict[str, CellResult]:
    return asyncio.run(run_cells(setup, cells, concurrency, via))


# --- summaries ----------------------------------------------------------------------------------


def describe(cell: Cell) -> dict[str, Any]:
    """A cell's coordinates, for tables and JSON."""
    if isinstance(cell, RequestCell):
        return {"path": "request", "family": cell.family, "site": cell.site, "encoding": cell.encoding}
    return {"path": "reply", "family": cell.family, "kind": cell.kind, "carrier": cell.carrier,
            "stream": cell.stream, "mode": cell.mode}


def rates(results: Iterable[CellResult]) -> dict[str, Any]:
    """Leak rate over judged cells, fidelity over cells where it applies, outcome counts."""
    rs = list(results)
    judged = [r for r in rs if r.leak is not None]
    fid = [r.fidelity for r in rs if r.fidelity is not None]
    outcomes: dict[str, int] = {}
    for r in rs:
        key = r.outcome if r.outcome in _JUDGED else "error"
        if key == "us":
            key = "us masked" if r.masked else "us unmasked"
        outcomes[key] = outcomes.get(key, 0) + 1
    return {"cells": len(rs), "leaks": sum(1 for r in judged if r.leak),
            "leak_rate": (sum(1 for r in judged if r.leak) / len(judged)) if judged else None,
            "errors": len(rs) - len(judged),
            "fidelity": (sum(fid) / len(fid)) if fid else None, "fidelity_cells": len(fid),
            "outcomes": outcomes}


def group(cells: list[Cell], results: dict[str, CellResult], *keys: str) -> dict[str, dict[str, Any]]:
    """rates() per combination of the given coordinates ("family", "site", "carrier", …)."""
    buckets: dict[str, list[CellResult]] = {}
    for cell in cells:
        d = describe(cell)
        if not all(k in d for k in keys):
            continue
        name = " × ".join(str(d[k]) for k in keys)
        buckets.setdefault(name, []).append(results[cell.id])
    return {name: rates(rs) for name, rs in buckets.items()}


def result_rows(cells: list[Cell], results: dict[str, CellResult]) -> list[dict[str, Any]]:
    return [{**describe(c), **asdict(results[c.id])} for c in cells]
