"""Every piece of text an OpenAI request or reply carries, and a way to rewrite them.

Classification, pseudonymisation and restoration must all see the same fields: all message
roles (system, user, assistant, tool), multi-part text content, `name`, tool-call arguments,
legacy prompts and embedding inputs. Keeping the walk in one place means a field added here is
covered by every step at once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

Path = tuple[Any, ...]


def _message_texts(messages: Any, prefix: Path) -> Iterator[tuple[Path, str]]:
    if not isinstance(messages, list):
        return
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            yield (*prefix, i, "content"), content
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield (*prefix, i, "content", j, "text"), part["text"]
        if isinstance(msg.get("name"), str):
            yield (*prefix, i, "name"), msg["name"]
        if isinstance(msg.get("refusal"), str):
            yield (*prefix, i, "refusal"), msg["refusal"]
        calls = msg.get("tool_calls")
        for k, call in enumerate(calls if isinstance(calls, list) else []):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                yield (*prefix, i, "tool_calls", k, "function", "arguments"), fn["arguments"]
        fn_call = msg.get("function_call")
        if isinstance(fn_call, dict) and isinstance(fn_call.get("arguments"), str):
            yield (*prefix, i, "function_call", "arguments"), fn_call["arguments"]


def request_texts(body: dict[str, Any], endpoint: str) -> Iterator[tuple[Path, str]]:
    """(path, text) for every text field of a request; endpoint: chat | completions | embeddings."""
    if endpoint == "chat":
        yield from _message_texts(body.get("messages"), ("messages",))
    elif endpoint == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            yield ("prompt",), prompt
        elif isinstance(prompt, list):
            for i, p in enumerate(prompt):
                if isinstance(p, str):
                    yield ("prompt", i), p
        if isinstance(body.get("suffix"), str):
            yield ("suffix",), body["suffix"]
    elif endpoint == "embeddings":
        inp = body.get("input")
        if isinstance(inp, str):
            yield ("input",), inp
        elif isinstance(inp, list):
            for i, p in enumerate(inp):
                if isinstance(p, str):
                    yield ("input", i), p
    else:
        raise ValueError(f"unknown endpoint {endpoint!r}")


def reply_texts(body: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """(path, text) for every text field of a non-streamed reply (chat or legacy completion)."""
    for c, choice in enumerate(body.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            yield ("choices", c, "text"), choice["text"]
        msg = choice.get("message")
        if isinstance(msg, dict):
            yield from _message_texts([msg], ("choices", c, "message"))


def _set(root: Any, path: Path, value: str) -> None:
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def rewrite(body: dict[str, Any], fields: list[tuple[Path, str]], fn: Callable[[str], str]) -> dict[str, Any]:
    """`body` with fn applied to each given text field; the input stays untouched.

    When fn changes nothing (the common case for a reply guard) the body itself is returned:
    no copy on the hot path."""
    changes = [(path, new) for path, text in fields if (new := fn(text)) != text]
    if not changes:
        return body
    out = copy.deepcopy(body)
    for path, new in changes:
        _set(out, _adjust(path), new)
    return out


def _adjust(path: Path) -> Path:
    # _message_texts for a reply message uses index 0 under ("choices", c, "message"): drop it.
    if len(path) > 3 and path[0] == "choices" and path[2] == "message" and path[3] == 0:
        return path[:3] + path[4:]
    return path
