"""Everything a running gateway holds: catalog, providers, scanner, policy, routing, ledger.

Built once at start-up from the config. Optional parts (policy, ledger) can be switched off in
the config; the handler then skips their steps, which is also how the benchmarks measure what
each part costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nuri.catalog import Catalog
from nuri.config import NuriConfig
from nuri.providers import create_provider
from nuri.providers.base import Provider

log = logging.getLogger("nuri.gateway")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Gateway:
    config: NuriConfig
    data_dir: Path
    catalog: Catalog
    providers: dict[str, Provider]
    scanner: Any = None
    engine: Any = None
    router: Any = None
    health: Any = None
    ledger: Any = None
    listen_host: str = "127.0.0.1"
    open_access: bool = True
    refused: str | None = None            # why start-up refused to serve, for the CLI to report
    config_path: Path | None = None
    warmup: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    def build(cls, config: NuriConfig, data_dir: Path, listen_host: str = "127.0.0.1") -> Gateway:
        from nuri.routing.health import HealthBook
        from nuri.routing.router import Router

        catalog = Catalog(config.deployments, config.aliases)
        providers = {d.id: create_provider(d) for d in config.deployments}
        health = HealthBook(config.routing)
        scanner = engine = None
        if config.policy.enabled:
            from nuri.policy.engine import PolicyEngine
            from nuri.privacy.scanner import Scanner

            scanner = Scanner(config.privacy)
            engine = PolicyEngine.load(config.policy, config.deployments)
        return cls(
            config=config, data_dir=data_dir, catalog=catalog, providers=providers,
            scanner=scanner, engine=engine, router=Router(config.routing, health), health=health,
            listen_host=listen_host,
        )

    async def start(self) -> None:
        """Open the ledger, refuse to run open on a reachable address, warm the providers up."""
        if self.config.ledger.enabled:
            from nuri.ledger import Ledger

            self.ledger = await Ledger.open(self.config.ledger, self.data_dir, deployments=self.config.deployments)
            self.open_access = self.ledger.open_mode
        if self.open_access:
            why = "the ledger is disabled" if self.ledger is None else "no API key exists"
            if not _is_loopback(self.listen_host) and not self.config.server.allow_open_non_loopback:
                self.refused = (f"{why}, so the gateway would run open; it refuses to on {self.listen_host}. "
                                "Create a key (nuri keys create --team T) or set server.allow_open_non_loopback.")
                raise RuntimeError(self.refused)
            log.warning("%s: serving without authentication on loopback only", why)
        # Load models and open pools in the background: /readyz says when they are ready.
        for provider in self.providers.values():
            self.warmup.append(asyncio.create_task(self._start_provider(provider)))

    async def _start_provider(self, provider: Provider) -> None:
        try:
            await provider.start()
        except Exception:
            log.exception("deployment %s failed to start", provider.deployment.id)

    async def reload_policy(self) -> dict[str, Any]:
        """Load the config file's policy again and swap it in; on any error keep the old one."""
        from nuri.config import ConfigError, load_config
        from nuri.errors import InvalidRequest
        from nuri.policy.model import PolicyError

        if self.engine is None or self.config_path is None:
            raise InvalidRequest("policy reload needs a running policy engine and a config file")
        try:
            fresh = load_config(self.config_path)
            self.engine.reload(fresh.policy, self.config.deployments)
        except (ConfigError, PolicyError, OSError) as exc:
            if self.ledger is not None:
                await self.ledger.admin_event("policy_reload_failed", "admin", {"error": str(exc)[:500]})
            raise InvalidRequest(f"policy not reloaded, the previous policy stays in force: {exc}",
                                 code="policy_invalid") from exc
        self.config.policy = fresh.policy
        summary = {"reloaded": True, "packs": fresh.policy.packs, "rules": len(self.engine.rules)}
        if self.ledger is not None:
            await self.ledger.admin_event("policy_reloaded", "admin", {"packs": fresh.policy.packs,
                                                                        "rules": summary["rules"]})
        return summary

    async def ready(self) -> dict[str, bool]:
        return {dep_id: await p.ready() for dep_id, p in self.providers.items()}

    async def stop(self) -> None:
        for task in self.warmup:
            task.cancel()
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.close()
        if self.ledger is not None:
            await self.ledger.close()
        from nuri.ledger import tracing

        tracing.shutdown()
