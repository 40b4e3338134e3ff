"""The AI Basic Act notice on replies: which ones (a policy `label` rule), how and in which words.

Policy decides whether a reply is labelled (ai-basic-act's `aibasic-label-generative`); the
`replies.label` settings decide how, per team and per channel (the API the reply goes out on),
team first, then channel, then the defaults:

  header  `x-nuri-ai-notice` (the notice, percent-encoded UTF-8) beside `x-nuri-ai-generated`
  event   streamed: the first event carries `nuri.notice` (chat and completions: a chunk without
          choices; Responses: `response.created` onwards; Messages: `message_start`); not
          streamed: the body field
  text    the notice appended to the reply's text, after a blank line (streamed: in the chunk
          that finishes each choice)
  field   `nuri: {ai_generated, notice}` in the body (streamed: the last event before usage)

`x-nuri-ai-generated: true` is sent on every labelled reply whatever the modes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from nuri.config import LabelSettings, LabelStyle
from nuri.gateway.language import mostly_korean

_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class Label:
    modes: frozenset[str]
    notice: str

    def body(self) -> dict[str, Any]:
        return {"ai_generated": True, "notice": self.notice}

    def header(self) -> str:
        return quote(self.notice, safe=" ().,:;!?-")


def _pick(field: str, *styles: LabelStyle | None) -> Any:
    for style in styles:
        if style is not None and getattr(style, field) is not None:
            return getattr(style, field)
    return None


def resolve(settings: LabelSettings, decision: Any, team: str, channel: str,
            request_shares: Mapping[str, float]) -> Label | None:
    """The label a reply carries, or None when no label rule matched."""
    if decision is None or not getattr(decision, "label", False):
        return None
    styles = (settings.teams.get(team), settings.channels.get(channel), settings)
    modes = frozenset(_pick("modes", *styles) or ())
    language = _pick("language", *styles)
    text = _pick("text", *styles)
    if language == "rule":
        notice = decision.label_text or f"{text.ko} ({text.en})"
    elif language == "ko":
        notice = text.ko
    elif language == "en":
        notice = text.en
    elif language == "request":
        notice = text.ko if mostly_korean(request_shares) else text.en
    else:
        notice = f"{text.ko} ({text.en})"
    return Label(modes, notice)


def label_reply(label: Label, reply: dict[str, Any]) -> None:
    """A whole reply, labelled in place."""
    if label.modes & {"field", "event"}:
        nuri = reply.get("nuri")
        reply["nuri"] = {**(nuri if isinstance(nuri, dict) else {}), **label.body()}
    if "text" not in label.modes:
        return
    for choice in reply.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = content + _SEPARATOR + label.notice
            elif isinstance(content, list):
                content.append({"type": "text", "text": _SEPARATOR + label.notice})
        elif isinstance(choice.get("text"), str):
            choice["text"] += _SEPARATOR + label.notice


class StreamLabel:
    """The label of a stream: an event before the first chunk, text where choices finish, a field
    at the end. `chat` is False for legacy completion chunks (`text` instead of `delta`)."""

    __slots__ = ("_done", "_head", "label", "chat")

    def __init__(self, label: Label, first: Mapping[str, Any], chat: bool) -> None:
        self.label = label
        self.chat = chat
        self._head = {k: first[k] for k in ("id", "object", "created") if k in first}
        self._done: set[int] = set()

    def _event(self, model: str) -> dict[str, Any]:
        return {**self._head, "model": model, "choices": [], "nuri": self.label.body()}

    def first(self, model: str) -> dict[str, Any] | None:
        return self._event(model) if "event" in self.label.modes else None

    def on_chunk(self, chunk: dict[str, Any]) -> None:
        """Append the notice to each choice this chunk finishes (not to a bare tool call)."""
        if "text" not in self.label.modes:
            return
        for pos, choice in enumerate(chunk.get("choices") or []):
            if not isinstance(choice, dict) or choice.get("finish_reason") in (None, "tool_calls"):
                continue
            idx = choice.get("index", pos)
            if idx in self._done:
                continue
            self._done.add(idx)
            text = _SEPARATOR + self.label.notice
            if self.chat:
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    delta = choice["delta"] = {}
                delta["content"] = (delta.get("content") or "") + text
            else:
                choice["text"] = (choice.get("text") or "") + text

    def last(self, model: str) -> dict[str, Any] | None:
        return self._event(model) if "field" in self.label.modes else None


def label_of(response: Any) -> Label | None:
    """The label the pipeline resolved for the request its `response` answers (read from the
    response's trail: a stream's, or a whole answer's), or None."""
    ctx = getattr(getattr(response, "trail", None), "ctx", None)
    label = getattr(getattr(ctx, "replies", None), "label", None)
    return label if isinstance(label, Label) else None


def first_event_label(response: Any) -> dict[str, Any] | None:
    """For the Responses and Messages streams: the `nuri` object their first event carries when
    the label's modes include `event` (read from the pipeline's stream response)."""
    label = label_of(response)
    return label.body() if label is not None and "event" in label.modes else None
