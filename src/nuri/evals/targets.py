"""What the runner calls: a catalog deployment through its provider, or a running gateway.

Through a gateway the request passes policy and routing like any client's, so an evaluation can
never send a suite to a deployment that policy would not allow; the deployment id becomes the
requested model and the catalog is still used for prices.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from pydantic import SecretStr

from nuri.catalog import Deployment, Hosting
from nuri.config import NuriConfig
from nuri.providers import create_provider
from nuri.providers.base import Provider


@dataclass
class Target:
    model: str
    deployment: Deployment
    provider: Provider
    catalog: Deployment | None
    pause_until: float = 0.0
    started: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self) -> Provider:
        async with self._lock:
            if not self.started:
                await self.provider.start()
                self.started = True
        return self.provider

    async def wait_if_paused(self) -> None:
        """Rate-limit awareness: after a 429 every worker of this deployment waits it out."""
        while (delay := self.pause_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        self.pause_until = max(self.pause_until, time.monotonic() + seconds)

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        if self.catalog is None or prompt_tokens is None or completion_tokens is None:
            return None
        return self.catalog.price.cost(prompt_tokens, completion_tokens)

    async def close(self) -> None:
        if self.started:
            await self.provider.close()


def gateway_deployment(model: str, url: str, api_key: str | None) -> Deployment:
    """A transport-only deployment that sends `model` to the gateway at `url`."""
    base = url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return Deployment(id=model, provider="openai_compatible", model=model, base_url=base,
                      api_key=SecretStr(api_key) if api_key is not None else None,
                      jurisdiction="KR", hosting=Hosting.ON_PREM)


def open_target(model: str, cfg: NuriConfig, via_gateway: str | None = None, api_key: str | None = None) -> Target:
    catalog = next((d for d in cfg.deployments if d.id == model), None)
    if via_gateway:
        deployment = gateway_deployment(model, via_gateway, api_key)
    elif catalog is None:
        known = ", ".join(d.id for d in cfg.deployments)
        raise KeyError(f"unknown deployment {model!r}; the catalog has: {known}")
    else:
        deployment = catalog
    return Target(model=model, deployment=deployment, provider=create_provider(deployment), catalog=catalog)


def choose_judge(cfg: NuriConfig, named: str | None, tested: list[str]) -> str:
    """The judge deployment: the one named, else a domestic one not under test, else any domestic."""
    if named:
        cfg.deployment(named)
        return named
    domestic = [d.id for d in cfg.deployments if d.is_domestic]
    for candidate in domestic:
        if candidate not in tested:
            return candidate
    if domestic:
        return domestic[0]
    raise ValueError("no domestic deployment to act as judge; name one with the scorer option `judge`")
