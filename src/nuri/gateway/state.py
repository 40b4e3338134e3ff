"""Everything a running gateway holds: catalog, providers, scanner, policy, routing, ledger.

Built at start-up from the config. The config-derived parts (catalog, aliases, providers, policy,
routing) form one `Generation` (generations.py) that `reload` replaces whole: the file is read and
every part built and validated beside the running one, then one reference is swapped between
requests; a request keeps the generation it started on, and a file that fails to load changes
nothing. Both outcomes are audited. Optional parts can be switched off in the config: policy off
is the null engine (nothing scanned, every candidate eligible), ledger off skips auth, admission
and records; the benchmarks measure what each part costs that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nuri.catalog import Catalog, Deployment
from nuri.config import NuriConfig
from nuri.errors import InvalidRequest
from nuri.gateway import workers
from nuri.gateway.evaluator import Evaluator
from nuri.gateway.generations import PINNED, Generation, fingerprint, retire
from nuri.providers import create_provider
from nuri.providers.base import Provider

log = logging.getLogger("nuri.gateway")
# Sections a reload cannot swap under running requests: the stores they describe stay open.
_RESTART_ONLY = ("ledger", "conversations", "rag")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _eval_strategy(config: NuriConfig, data_dir: Path) -> Any:
    """The `eval` strategy's ranking for planned workloads, kept current from the eval store."""
    if config.workloads.plan is None:
        return None
    from nuri.evals.store import database_url
    from nuri.planning.live import eval_strategy

    return eval_strategy(config, database_url(config.ledger.database_url, data_dir))


def _same_endpoint(a: Deployment, b: Deployment) -> bool:
    """Whether a provider built for `a` can serve `b` (prices and routing facts aside)."""
    keep = {"id", "provider", "model", "model_path", "base_url", "api_key", "timeouts", "max_concurrency",
            "options", "upstream"}
    return a.model_dump(include=keep) == b.model_dump(include=keep)


@dataclass
class Gateway:
    live: Generation
    data_dir: Path
    health: Any = None
    ledger: Any = None
    listen_host: str = "127.0.0.1"
    open_access: bool = True
    refused: str | None = None            # why start-up refused to serve, for the CLI to report
    config_path: Path | None = None
    warmup: list[asyncio.Task[Any]] = field(default_factory=list)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _retiring: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def build(cls, config: NuriConfig, data_dir: Path, listen_host: str = "127.0.0.1") -> Gateway:
        from nuri.routing.health import HealthBook

        health = HealthBook(config.routing)
        providers = {d.id: create_provider(d) for d in config.deployments}
        live = Generation(1, config, Catalog(config.deployments, config.aliases), providers,
                          _evaluator(config, health, data_dir))
        return cls(live=live, data_dir=data_dir, health=health, listen_host=listen_host)

    # What a request reads: the generation it was pinned to, else (background work) the live one.
    @property
    def generation(self) -> Generation:
        return PINNED.get() or self.live

    @property
    def config(self) -> NuriConfig:
        return self.generation.config

    @property
    def catalog(self) -> Catalog:
        return self.generation.catalog

    @property
    def providers(self) -> dict[str, Provider]:
        return self.generation.providers

    @property
    def evaluator(self) -> Evaluator:
        return self.generation.evaluator

    @property
    def scanner(self) -> Any:
        """The scanner policy classifies with (None when policy is off: nothing is scanned)."""
        return self.evaluator.scanner

    @property
    def engine(self) -> Any:
        return self.evaluator.engine

    @property
    def router(self) -> Any:
        return self.evaluator.router

    async def start(self) -> None:
        """Open the ledger, refuse to run open on a reachable address, warm the providers up."""
        config = self.live.config
        self.live.fingerprint = fingerprint(self.config_path, config)
        if config.ledger.enabled:
            from nuri.ledger import Ledger

            self.ledger = await Ledger.open(config.ledger, self.data_dir, deployments=config.deployments,
                                            money=config.money)
            self.open_access = self.ledger.open_mode
        if self.open_access:
            why = "the ledger is disabled" if self.ledger is None else "no API key exists"
            if not _is_loopback(self.listen_host) and not config.server.allow_open_non_loopback:
                self.refused = (f"{why}, so the gateway would run open; it refuses to on {self.listen_host}. "
                                "Create a key (nuri keys create --team T) or set server.allow_open_non_loopback.")
                raise RuntimeError(self.refused)
            log.warning("%s: serving without authentication on loopback only", why)
        # Load models and open pools in the background: /readyz says when they are ready.
        for provider in self.live.providers.values():
            self.warmup.append(asyncio.create_task(self._start_provider(provider)))
        if config.rag.collections:              # retrieval indexes, rebuilt from their store
            self.warmup.append(asyncio.create_task(self._build_rag_indexes()))
        self._listen_for_signals()

    async def _build_rag_indexes(self) -> None:
        """Each collection's index built at start, so the first question does not wait for it; a
        failure here is logged and the index is built on first use instead."""
        from nuri.rag.step import service_for

        try:
            service = service_for(self)
            for name in self.live.config.rag.collections:
                await service.index(name)
        except Exception as exc:
            log.error("retrieval indexes not built at start (%s); they are built on first use", type(exc).__name__)

    def _listen_for_signals(self) -> None:
        """SIGHUP reloads the config file; SIGUSR1 (sent by `nuri serve --workers` when a sibling
        worker reloaded) reloads it only if it changed since this worker loaded it."""
        if self.config_path is None:
            return
        loop = asyncio.get_running_loop()
        for signum, only_if_changed in ((signal.SIGHUP, False), (signal.SIGUSR1, True)):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._reload_in_background, only_if_changed)

    def _reload_in_background(self, only_if_changed: bool) -> None:
        async def run() -> None:
            with contextlib.suppress(InvalidRequest):     # audited; the running config stays
                await self.reload("signal", only_if_changed=only_if_changed, tell_siblings=False)

        task = asyncio.get_running_loop().create_task(run())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _start_provider(self, provider: Provider) -> None:
        try:
            await provider.start()
        except Exception:
            log.exception("deployment %s failed to start", provider.deployment.id)

    async def reload(self, actor: str = "admin", *, only_if_changed: bool = False,
                     tell_siblings: bool = True) -> dict[str, Any]:
        """Load the config file again and swap the whole of it in (catalog, aliases, policy,
        privacy, routing); on any error keep the running one. Requests already running finish on
        the generation they started with; its providers that the new one does not reuse close
        after them."""
        from nuri.config import load_config

        if self.config_path is None:
            raise InvalidRequest("reload needs the config file the gateway was started with (nuri serve --config)",
                                 code="no_config_file")
        async with self._reload_lock:
            old = self.live
            try:
                fresh = await asyncio.to_thread(load_config, self.config_path)
                if workers.is_worker():
                    workers.shared_counters(fresh)           # as this worker's start-up did
                mark = fingerprint(self.config_path, fresh)
                if only_if_changed and mark == old.fingerprint:
                    return {"reloaded": False, "generation": old.number, "unchanged": True}
                restart = self._keep_restart_only(old.config, fresh)
                evaluator = await asyncio.to_thread(_evaluator, fresh, self.health, self.data_dir)
                providers = {d.id: self._provider_for(old, d) for d in fresh.deployments}
            except Exception as exc:
                await self._audit("config_reload_failed", actor, {"generation": old.number,
                                                                   "error": str(exc)[:500]})
                raise InvalidRequest(f"config not reloaded, the running config (catalog, aliases, policy, "
                                     f"routing) stays in force: {exc}", code="config_invalid") from exc
            started = [p for p in providers.values() if p not in old.providers.values()]
            await asyncio.gather(*(self._start_provider(p) for p in started))
            new = Generation(old.number + 1, fresh, Catalog(fresh.deployments, fresh.aliases), providers, evaluator,
                             fingerprint=mark)
            self.health.settings = fresh.routing
            self.live = new                                    # the swap: one reference
            if self.ledger is not None:
                self.ledger.use_catalog(fresh.deployments, fresh.money)
            task = asyncio.get_running_loop().create_task(retire(old, providers))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            summary = _summary(old, new, restart)
            await self._audit("config_reloaded", actor, {
                "generation": new.number, "deployments": sorted(new.catalog.deployments),
                "added": summary["added"], "removed": summary["removed"], "changed": summary["changed"],
                "packs": fresh.policy.packs if fresh.policy.enabled else [], "rules": summary["rules"],
                "restart_needed": restart})
        if tell_siblings:
            _tell_siblings()
        return summary

    def _keep_restart_only(self, running: NuriConfig, fresh: NuriConfig) -> list[str]:
        """Sections that need a restart keep their running values; returns those that differ. The
        budget currency cannot change: budgets and spend are stored in it."""
        if fresh.money.currency != running.money.currency:
            raise ValueError(f"money.currency cannot change from {running.money.currency} to "
                             f"{fresh.money.currency} while running: budgets and spend are kept in it")
        differ = [name for name in _RESTART_ONLY if getattr(fresh, name) != getattr(running, name)]
        for name in _RESTART_ONLY:
            setattr(fresh, name, getattr(running, name))
        return differ

    def _provider_for(self, old: Generation, deployment: Deployment) -> Provider:
        """The running provider when its endpoint did not change (pools and loaded models are kept)."""
        current = old.providers.get(deployment.id)
        if current is not None and _same_endpoint(old.catalog.deployments[deployment.id], deployment):
            return current
        return create_provider(deployment)

    async def _audit(self, kind: str, actor: str, detail: dict[str, Any]) -> None:
        if self.ledger is not None:
            await self.ledger.admin_event(kind, actor, detail)

    async def reload_policy(self) -> dict[str, Any]:
        """The reload endpoint's former name: the whole config is reloaded now."""
        return await self.reload()

    async def ready(self) -> dict[str, bool]:
        return {dep_id: await p.ready() for dep_id, p in self.live.providers.items()}

    async def stop(self) -> None:
        for task in self.warmup:
            task.cancel()
        for task in list(self._retiring):
            task.cancel()
        for provider in self.live.providers.values():
            with contextlib.suppress(Exception):
                await provider.close()
        if self.ledger is not None:
            await self.ledger.close()
        from nuri.observability import tracing

        tracing.shutdown()


def _evaluator(config: NuriConfig, health: Any, data_dir: Path) -> Evaluator:
    from nuri.routing.router import Router

    return Evaluator.from_config(config, Router(config.routing, health, eval_strategy=_eval_strategy(config, data_dir)))


def _summary(old: Generation, new: Generation, restart: list[str]) -> dict[str, Any]:
    before, after = old.catalog.deployments, new.catalog.deployments
    engine = new.evaluator.engine
    return {
        "reloaded": True,
        "generation": new.number,
        "deployments": sorted(after),
        "aliases": sorted(new.catalog.aliases),
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(d for d in set(after) & set(before) if after[d] != before[d]),
        "packs": new.config.policy.packs if new.config.policy.enabled else [],
        "rules": len(getattr(engine, "rules", ()) or ()),
        "strategy": new.config.routing.strategy,
        "restart_needed": restart,
    }


def _tell_siblings() -> None:
    """Under `nuri serve --workers N`, ask the supervisor to have every worker re-read the file."""
    from nuri.config import env

    supervisor = env("NURI_WORKER_SUPERVISOR")
    if supervisor and supervisor.isdigit() and int(supervisor) == os.getppid():
        with contextlib.suppress(OSError):
            os.kill(int(supervisor), signal.SIGUSR1)
