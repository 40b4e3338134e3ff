"""Server-sent events: parse an upstream's stream and write ours.

Parsing works on raw byte chunks as they arrive, so a reply is never buffered whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def encode_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class EventTooLarge(ValueError):
    """An SSE line or event grew past the cap: a faulty upstream, or one that never sends a newline."""


async def iter_sse_data(chunks: AsyncIterator[bytes], max_event_bytes: int = 1 << 20) -> AsyncIterator[bytes]:
    """Yield the `data:` field of each event (multi-line data joined by newlines).

    A line, or an event's data, longer than `max_event_bytes` raises `EventTooLarge`: without a cap
    an upstream that never ends a line would grow the buffer until the process runs out of memory.
    """
    buffer = b""
    data_lines: list[bytes] = []
    data_size = 0
    async for chunk in chunks:
        buffer += chunk
        while True:
            nl = buffer.find(b"\n")
            if nl < 0:
                break
            line, buffer = buffer[:nl], buffer[nl + 1 :]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data_lines:
                    yield b"\n".join(data_lines)
                    data_lines = []
                    data_size = 0
                continue
            if line.startswith(b":"):
                continue  # comment / keep-alive
            if line.startswith(b"data:"):
                value = line[5:]
                data_lines.append(value[1:] if value.startswith(b" ") else value)
                data_size += len(value)
                if data_size > max_event_bytes:
                    raise EventTooLarge(f"a stream event exceeds {max_event_bytes} bytes")
        if len(buffer) > max_event_bytes:
            raise EventTooLarge(f"a stream line exceeds {max_event_bytes} bytes")
    if data_lines:
        yield b"\n".join(data_lines)
