"""Every string an OpenAI request or reply carries, and a way to rewrite them.

Deny by default: the walk visits every string at any depth — message parts, tool and function
definitions with their JSON schemas, `response_format`, `metadata`, `user`, `prediction` and any
key Nuri does not know — and object keys too. Only values Nuri itself interprets are exempt: the
model id and enum-like words under a few known keys (`role`, `type`, …), and only while they look
like such a word, so a value smuggled into `type` is still read.

Content Nuri cannot read (image, audio and file parts, and `data:` URLs of non-text media) is not
a string to scan: it is reported as `Unscanned` with its media type, a fact policy can match.

Classification, masking, the token estimate and explain all use this one walk, so a field added
here is covered by every step at once.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Path = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class KeyOf:
    """A path's last element when the string is an object key itself, not the value under it."""

    key: str


@dataclass(frozen=True, slots=True)
class Unscanned:
    """Content Nuri cannot read: where it is and what media type it declares."""

    path: Path
    media_type: str



# Keys whose value Nuri interprets as an enum-like word; exempt only while it looks like one.
_ENUM_KEYS = frozenset({
    "role", "type", "object", "detail", "format", "encoding_format", "tool_choice", "reasoning_effort",
    "service_tier", "modalities", "finish_reason", "voice",
})
_ENUM_WORD = re.compile(r"[a-z][a-z0-9_.:/+-]{0,63}")
_DIGIT = re.compile(r"\d")
# Object keys made of identifier characters with few digits cannot hold an identifier or an
# e-mail address; skipping them keeps JSON schemas (mostly keys) cheap to walk.
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.\-]{0,63}")
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?[^,]{0,200},", re.ASCII)
_TEXT_MEDIA = re.compile(r"text/|application/(?:json|xml|x-www-form-urlencoded)")

# Content parts whose payload is not text: part type → (payload key, field inside it, default media).
_BINARY_PARTS: dict[str, tuple[str, str | None, str]] = {
    "image_url": ("image_url", "url", "image/*"),
    "input_image": ("image_url", None, "image/*"),
    "image": ("image", None, "image/*"),
    "input_audio": ("input_audio", "data", "audio/*"),
    "audio": ("audio", "data", "audio/*"),
    "file": ("file", "file_data", "application/octet-stream"),
    "input_file": ("file_data", None, "application/octet-stream"),
}
_AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg",
                  "pcm16": "audio/pcm", "webm": "audio/webm", "m4a": "audio/mp4", "aac": "audio/aac"}


# What the two checks below said of a short string, remembered: a request's keys and enum words
# repeat (every message has `role` and `content`, most roles are `user` or `assistant`), and a long
# conversation walks them on every turn. Bounded, so keys a client invents cannot grow it.
_WORDS_SEEN_MAX = 4096
_enum_words: dict[str, bool] = {}
_plain_keys: dict[str, bool] = {}


def _remember(seen: dict[str, bool], word: str, verdict: bool) -> bool:
    if len(word) <= 64 and len(seen) < _WORDS_SEEN_MAX:
        seen[word] = verdict
    return verdict


def _exempt(key: Any, value: str, depth: int) -> bool:
    if key == "model" and depth == 1:
        return True
    if key not in _ENUM_KEYS:
        return False
    verdict = _enum_words.get(value)
    if verdict is None:
        verdict = _remember(_enum_words, value,
                            _ENUM_WORD.fullmatch(value) is not None and len(_DIGIT.findall(value)) < 4)
    return verdict


def _plain_key(key: str) -> bool:
    verdict = _plain_keys.get(key)
    if verdict is None:
        verdict = _remember(_plain_keys, key, _PLAIN_KEY.fullmatch(key) is not None and len(_DIGIT.findall(key)) < 4)
    return verdict


def data_url_media(value: str) -> str | None:
    """The media type of a `data:` URL that is not text (None for text, or for no data URL)."""
    if not value.startswith("data:"):
        return None
    m = _DATA_URL.match(value)
    media = (m.group(1) if m and m.group(1) else "application/octet-stream").lower()
    return None if _TEXT_MEDIA.match(media) else media


def _part_media(part: dict[str, Any], ptype: str) -> tuple[str, Path]:
    """(media type, path of the payload inside the part) for a binary content part."""
    key, inner, default = _BINARY_PARTS[ptype]
    payload = part.get(key)
    location: Path = (key,)
    if inner is not None and isinstance(payload, dict):
        location = (key, inner)
        payload = payload.get(inner)
    media = default
    if isinstance(payload, str):
        media = data_url_media(payload) or default
    audio = part.get("input_audio") or part.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("format"), str):
        media = _AUDIO_FORMATS.get(audio["format"].lower(), f"audio/{audio['format'].lower()[:16]}")
    file = part.get("file")
    filename = file.get("filename") if isinstance(file, dict) else part.get("filename")
    if media == default and isinstance(filename, str) and "." in filename:
        media = f"application/{filename.rsplit('.', 1)[1].lower()[:16]}"
    return media, location


def walk(body: Any) -> tuple[list[tuple[Path, str]], list[Unscanned]]:
    """(every string to scan with its path, every piece of content that cannot be scanned)."""
    texts: list[tuple[Path, str]] = []
    unscanned: list[Unscanned] = []
    _walk(body, (), texts, unscanned, None)
    return texts, unscanned


def _binary_payload(node: dict[str, Any], path: Path, unscanned: list[Unscanned]) -> Path | None:
    """Report a binary part as unscanned; the path of a payload not to read as text, if any.

    A part that points at a URL is still content the model will see and Nuri will not, so it is
    unscanned too; the URL itself is text and is scanned like any other string."""
    media, location = _part_media(node, node["type"])
    unscanned.append(Unscanned((*path, *location), media))
    payload: Any = node
    for k in location:
        payload = payload.get(k) if isinstance(payload, dict) else None
    if isinstance(payload, str) and payload.startswith(("http://", "https://")):
        return None
    return (*path, *location)


def _walk(node: Any, path: Path, texts: list[tuple[Path, str]], unscanned: list[Unscanned],
          skip: Path | None) -> None:
    if isinstance(node, dict):
        ptype = node.get("type")
        if isinstance(ptype, str) and ptype in _BINARY_PARTS:
            skip = _binary_payload(node, path, unscanned) or skip
        depth = len(path) + 1
        for key, value in node.items():
            if isinstance(key, str) and not _plain_key(key):
                texts.append(((*path, KeyOf(key)), key))
            if not isinstance(value, str | dict | list):
                continue                       # a number, a boolean, null: nothing to read
            here = (*path, key)
            if skip is not None and here == skip:
                continue
            if isinstance(value, str):
                if not _exempt(key, value, depth):
                    _text(here, value, texts, unscanned)
            else:
                _walk(value, here, texts, unscanned, skip)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            here = (*path, i)
            if skip is not None and here == skip:
                continue
            if isinstance(value, str):
                _text(here, value, texts, unscanned)
            elif isinstance(value, dict | list):
                _walk(value, here, texts, unscanned, skip)


def _text(path: Path, value: str, texts: list[tuple[Path, str]], unscanned: list[Unscanned]) -> None:
    media = data_url_media(value) if value.startswith("data:") else None
    if media is not None:
        unscanned.append(Unscanned(path, media))
    else:
        texts.append((path, value))


def request_texts(body: dict[str, Any], endpoint: str | None = None) -> Iterator[tuple[Path, str]]:
    """(path, text) for every string of a request that is scanned (see the module docstring).

    `endpoint` is accepted for callers that name it; the walk is the same for every endpoint, so
    a field a wire API adds later is covered without a change here."""
    yield from walk(body)[0]


def request_unscanned(body: dict[str, Any]) -> list[Unscanned]:
    """Content parts and data URLs of a request that cannot be read as text."""
    return walk(body)[1]


# Reply keys whose values are the protocol's own, never model output.
_REPLY_OWN = frozenset({"id", "object", "model", "created", "system_fingerprint", "service_tier", "usage",
                        "obfuscation"})


def reply_texts(body: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """(path, text) for every string of a reply or stream chunk that could carry model output:
    every field of every choice (content, refusal, tool calls, logprobs tokens, unknown keys) and
    any unknown top-level key; protocol fields (`id`, `object`, `usage`, enum words) are exempt."""
    texts: list[tuple[Path, str]] = []
    for key, value in body.items():
        if key in _REPLY_OWN:
            continue
        if isinstance(value, str):
            if not _exempt(key, value, 2):
                texts.append(((key,), value))
        elif isinstance(value, dict | list):
            _walk(value, (key,), texts, [], None)
    # generated audio (message.audio.data) is base64 sound, not text: its transcript is read
    yield from (t for t in texts if t[0][-2:] != ("audio", "data"))


def _set(root: Any, path: Path, value: str) -> None:
    node = root
    for key in path[:-1]:
        node = node[key]
    last = path[-1]
    if isinstance(last, KeyOf):
        _rename_key(node, last.key, value)
    else:
        node[last] = value


def _rename_key(node: dict[str, Any], old: str, new: str) -> None:
    """Rename a key in place, keeping the order of the others (schemas list properties in order)."""
    if old not in node or old == new:
        return
    items = list(node.items())
    node.clear()
    for k, v in items:
        node[new if k == old else k] = v


def rewrite(body: dict[str, Any], fields: list[tuple[Path, str]], fn: Callable[[str], str]) -> dict[str, Any]:
    """`body` with fn applied to each given text field; the input stays untouched.

    When fn changes nothing (the common case for a reply guard) the body itself is returned:
    no copy on the hot path."""
    return apply(body, [(path, new) for path, text in fields if (new := fn(text)) != text])


def apply(body: dict[str, Any], changes: list[tuple[Path, str]]) -> dict[str, Any]:
    """A copy of `body` with each path set to its new text (object keys renamed); `body` itself
    when there is no change. Values are set before keys are renamed, deepest keys first, so every
    path still leads where it did."""
    if not changes:
        return body
    out = copy.deepcopy(body)
    values = [c for c in changes if not isinstance(c[0][-1], KeyOf)]
    keys = sorted((c for c in changes if isinstance(c[0][-1], KeyOf)), key=lambda c: -len(c[0]))
    for path, new in values + keys:
        _set(out, path, new)
    return out
