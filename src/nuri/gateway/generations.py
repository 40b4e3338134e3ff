"""Config generations: what a request runs on, swapped whole by a reload, never changed in place.

A `Generation` is one loaded config with everything built from it (catalog, providers, evaluator:
scanner, policy engine, router). The gateway holds one live generation; a reload builds and
validates the next one beside it and swaps a single reference. `PinGeneration`, an ASGI
middleware, takes the live generation when a request arrives and keeps it for the request's whole
life, streamed body included, so a request never sees half of two configs. A replaced generation
closes the providers the new one does not reuse once its last request has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from nuri.catalog import Catalog
from nuri.config import NuriConfig
from nuri.gateway.evaluator import Evaluator
from nuri.providers.base import Provider

log = logging.getLogger("nuri.gateway")

PINNED: contextvars.ContextVar[Generation | None] = contextvars.ContextVar("nuri_generation", default=None)


@dataclass(eq=False)
class Generation:
    number: int
    config: NuriConfig
    catalog: Catalog
    providers: dict[str, Provider]
    evaluator: Evaluator
    fingerprint: str = ""
    in_flight: int = 0
    retired: bool = False
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drained(self) -> None:
        """Return once no request runs on this generation any more."""
        if self.in_flight:
            await self._idle.wait()


def fingerprint(config_path: Path | None, config: NuriConfig) -> str:
    """What a config file (and the policy files it names) held when loaded: equal fingerprints
    mean a reload would change nothing."""
    h = hashlib.sha256()
    paths = [config_path] if config_path is not None else []
    paths += [Path(p) if Path(p).is_absolute() or config_path is None else config_path.parent / p
              for p in config.policy.files]
    for path in paths:
        with contextlib.suppress(OSError):
            h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


async def retire(old: Generation, keep: dict[str, Provider]) -> None:
    """Close `old`'s providers that the live generation does not reuse, after its last request."""
    old.retired = True
    await old.drained()
    for dep_id, provider in old.providers.items():
        if keep.get(dep_id) is provider:
            continue
        try:
            await provider.close()
        except Exception:
            log.warning("deployment %s of generation %d did not close cleanly", dep_id, old.number)


class PinGeneration:
    """ASGI middleware: each HTTP request runs on the generation live when it arrived."""

    def __init__(self, app: ASGIApp, gateway: Any) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        generation = self.gateway.live
        generation.enter()
        token = PINNED.set(generation)
        try:
            await self.app(scope, receive, send)
        finally:
            PINNED.reset(token)
            generation.leave()
