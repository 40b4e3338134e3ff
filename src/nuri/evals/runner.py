"""The runner: suites × models × items through the provider layer, scored and stored.

Concurrency is per deployment (workers pulling from that deployment's queue), so a slow model
does not hold back a fast one. A 429 pauses that deployment for Retry-After; 5xx, timeouts and
dropped connections are retried with backoff. Results are written in small batches as they
finish, so a killed run resumes where it stopped without calling any model again for finished
items.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from nuri.config import NuriConfig
from nuri.errors import NuriError, UpstreamError
from nuri.evals.scorers import ScoreContext, Scorer, get_scorer
from nuri.evals.scorers.echo import echoes_prompt
from nuri.evals.scorers.korean import wrong_language
from nuri.evals.store import ItemResult, ResultStore
from nuri.evals.suite import Suite, canonical, item_hash
from nuri.evals.targets import Target, choose_judge, open_target
from nuri.providers.base import Provider

FLUSH_SECONDS = 0.05


@dataclass
class RunOptions:
    limit: int | None = None
    concurrency: int = 4
    retries: int = 3
    backoff: float = 0.5
    via_gateway: str | None = None
    api_key: str | None = None
    resume: str | None = None
    auto_resume: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    unsafe_code: bool = False  # run model-written code even where the OS sandbox is unavailable


@dataclass
class Unit:
    suite: Suite
    scorer: Scorer
    item: dict[str, Any]
    model: str


@dataclass
class CallResult:
    text: str
    latency_ms: float
    ttft_ms: float | None
    usage: dict[str, Any] | None


class ProgressHooks(Protocol):
    """What the runner reports as it goes; the CLI draws a progress bar from it."""

    def start(self, model: str, total: int, done: int) -> None: ...
    def advance(self, model: str) -> None: ...


class Progress:
    """The default hooks: draw nothing."""

    def start(self, model: str, total: int, done: int) -> None: ...
    def advance(self, model: str) -> None: ...


def retry_delay(exc: BaseException, attempt: int, backoff: float) -> tuple[float | None, bool]:
    """(seconds to wait before retrying or None if not retryable, whether it was a rate limit)."""
    status = getattr(exc, "upstream_status", None) or getattr(exc, "status", None)
    headers = getattr(exc, "headers", None) or {}
    retry_after = headers.get("Retry-After") or headers.get("retry-after") or getattr(exc, "retry_after", None)
    wait = min(backoff * (2 ** attempt), 30.0) * (0.5 + random.random())
    if status == 429:
        with contextlib.suppress(TypeError, ValueError):
            if retry_after is not None:
                return max(float(retry_after), 0.05), True
        return wait, True
    if isinstance(exc, UpstreamError):
        return (wait if exc.retryable or (status or 0) >= 500 else None), False
    if isinstance(exc, NuriError):
        return (wait if exc.status >= 500 else None), False
    if isinstance(exc, TimeoutError | ConnectionError | aiohttp.ClientError | OSError):
        return wait, False
    if isinstance(status, int) and status >= 500:
        return wait, False
    return None, False


async def score_reply(suite: Suite, scorer: Scorer, item: dict[str, Any], reply: str,
                      ctx: ScoreContext) -> tuple[float, dict[str, Any], bool]:
    """The scorer's verdict with the suite-wide gates: a copied prompt or, where Korean is
    required, a reply in another language scores 0."""
    scored = await scorer.score(item, reply, ctx)
    value, details = scored.value, dict(scored.details)
    users = [m["content"] for m in ctx.messages if m.get("role") == "user"]
    if suite.settings.reject_echo and users and echoes_prompt(reply, users[-1], suite.template):
        details["echo"] = True
        value = 0.0
    if suite.requires_korean(item) and wrong_language(reply):
        details["not_korean"] = True
        value = 0.0
    return value, details, value >= suite.settings.pass_threshold


def run_fingerprint(suites: list[Suite], models: list[str], options: RunOptions) -> str:
    data = {"suites": [[s.name, s.version, s.definition_hash] for s in suites], "models": models,
            "limit": options.limit, "overrides": options.overrides, "via": options.via_gateway}
    return hashlib.sha256(canonical(data)).hexdigest()[:32]


def suite_settings(suite: Suite, overrides: dict[str, Any]) -> dict[str, Any]:
    settings = suite.settings.model_dump() | overrides
    return settings | {"template": suite.template, "system": suite.system,
                       "shots": len(suite.shots) if settings.get("num_shots") is None else settings["num_shots"],
                       "scorer": suite.scorer.model_dump(), "definition": suite.definition_hash}


class EvalRunner:
    def __init__(self, store: ResultStore, cfg: NuriConfig, suites: list[Suite], models: list[str],
                 options: RunOptions | None = None, progress: ProgressHooks | None = None) -> None:
        self.store, self.cfg, self.suites, self.models = store, cfg, suites, models
        self.options = options or RunOptions()
        self.progress: ProgressHooks = progress or Progress()
        self.targets: dict[str, Target] = {}
        self._judges: dict[str, Target] = {}
        self.resumed_from: str | None = None
        self.skipped = 0
        self._settings_cache: dict[str, dict[str, Any]] = {}
        self._hashes: dict[tuple[str, str], str] = {}

    # -- setup ------------------------------------------------------------------------------
    def _prepare_run(self) -> str:
        o = self.options
        fingerprint = run_fingerprint(self.suites, self.models, o)
        run_id = o.resume or (self.store.unfinished_run(fingerprint) if o.auto_resume else None)
        if run_id:
            run = self.store.get_run(run_id)
            if run is None:
                raise KeyError(f"no evaluation run {run_id!r}")
            if run["fingerprint"] != fingerprint:
                raise ValueError(f"run {run_id} used other suites, models or settings; start a new run instead")
            self.resumed_from = run["id"]
            self.store.set_status(run["id"], "running")
            return str(run["id"])
        suites = [{"name": s.name, "version": s.version, "definition": s.definition_hash,
                   "items": len(s.items)} for s in self.suites]
        settings = {"suites": {s.name: suite_settings(s, o.overrides) for s in self.suites},
                    "limit": o.limit, "concurrency": o.concurrency, "retries": o.retries,
                    "via_gateway": o.via_gateway}
        return self.store.create_run(fingerprint, suites, self.models, settings)

    def _chosen(self, suite: Suite) -> list[dict[str, Any]]:
        return suite.items[: self.options.limit] if self.options.limit else suite.items

    def _units(self, run_id: str) -> dict[str, list[Unit]]:
        done = self.store.finished_units(run_id)
        per_model: dict[str, list[Unit]] = {m: [] for m in self.models}
        for suite in self.suites:
            scorer = get_scorer(suite.scorer.name, suite.scorer.options)
            if self.options.unsafe_code and hasattr(scorer, "unsafe"):
                scorer.unsafe = True
            for item in self._chosen(suite):
                for model in self.models:
                    if (suite.name, item["id"], model) in done:
                        self.skipped += 1
                        continue
                    per_model[model].append(Unit(suite, scorer, item, model))
        return per_model

    # -- calling ----------------------------------------------------------------------------
    def _settings(self, suite: Suite) -> dict[str, Any]:
        """The suite's settings with the run's overrides, computed once per suite."""
        if suite.name not in self._settings_cache:
            self._settings_cache[suite.name] = suite.settings.model_dump() | self.options.overrides
        return self._settings_cache[suite.name]

    def _body(self, unit: Unit, target: Target) -> tuple[dict[str, Any], list[dict[str, str]]]:
        s = self._settings(unit.suite)
        messages = unit.suite.messages(unit.item, s.get("num_shots"))
        body: dict[str, Any] = {"model": target.deployment.model or target.model, "messages": messages,
                                "temperature": s["temperature"], "max_tokens": int(s["max_tokens"]),
                                "seed": int(s["seed"])}
        if s.get("stream", True):
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body, messages

    @staticmethod
    async def _call(provider: Provider, body: dict[str, Any]) -> CallResult:
        t0 = time.perf_counter()
        if not body.get("stream"):
            out = await provider.chat(body)
            text = (out.get("choices") or [{}])[0].get("message", {}).get("content") or ""
            return CallResult(text, (time.perf_counter() - t0) * 1000, None, out.get("usage"))
        parts: list[str] = []
        ttft: float | None = None
        usage: dict[str, Any] | None = None
        async for chunk in provider.stream_chat(body):
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if ttft is None:
                        ttft = (time.perf_counter() - t0) * 1000
                    parts.append(piece)
            if chunk.get("usage"):
                usage = chunk["usage"]
        return CallResult("".join(parts), (time.perf_counter() - t0) * 1000, ttft, usage)

    def _item_hash(self, unit: Unit) -> str:
        key = (unit.suite.name, unit.item["id"])
        if key not in self._hashes:
            self._hashes[key] = item_hash(unit.item)
        return self._hashes[key]

    async def _judge(self, unit: Unit) -> Provider:
        named = unit.suite.scorer.options.get("judge")
        judge_id = choose_judge(self.cfg, named, self.models)
        if judge_id not in self._judges:
            self._judges[judge_id] = open_target(judge_id, self.cfg, self.options.via_gateway, self.options.api_key)
        return await self._judges[judge_id].start()

    async def _evaluate(self, run_id: str, unit: Unit, target: Target) -> ItemResult:
        body, messages = self._body(unit, target)
        result = ItemResult(run_id=run_id, suite=unit.suite.name, suite_version=unit.suite.version,
                            item_id=unit.item["id"], item_hash=self._item_hash(unit), model=unit.model,
                            prompt=orjson.dumps(messages).decode(), attempts=0)
        call: CallResult | None = None
        for attempt in range(self.options.retries + 1):
            await target.wait_if_paused()
            result.attempts = attempt + 1
            try:
                call = await self._call(target.provider, body)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an upstream failure is data for the report, not a crash
                delay, limited = retry_delay(exc, attempt, self.options.backoff)
                result.error = f"{type(exc).__name__}: {exc}"[:500]
                if delay is None or attempt == self.options.retries:
                    return result
                if limited:
                    target.pause(delay)
                else:
                    await asyncio.sleep(delay)
        assert call is not None
        result.error = None
        result.reply, result.latency_ms, result.ttft_ms = call.text, call.latency_ms, call.ttft_ms
        usage = call.usage or {}
        result.prompt_tokens, result.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        result.cost = target.cost(result.prompt_tokens, result.completion_tokens)
        settings = unit.suite.settings
        ctx = ScoreContext(messages=messages, seed=settings.seed, judge=lambda: self._judge(unit),
                           latency_ms=call.latency_ms, ttft_ms=call.ttft_ms, cost=result.cost)
        try:
            result.score, result.details, result.passed = await score_reply(
                unit.suite, unit.scorer, unit.item, call.text, ctx)
        except Exception as exc:
            result.error = f"scoring failed: {type(exc).__name__}: {exc}"[:500]
        return result

    # -- orchestration ----------------------------------------------------------------------
    def _check_code_isolation(self) -> None:
        """Refuse code suites before anything is stored or called when the sandbox is missing."""
        from nuri.evals.scorers.code import SandboxUnavailable, isolation, unavailable_message

        if self.options.unsafe_code or not any(s.scorer.name == "code" for s in self.suites):
            return
        if not isolation().available:
            raise SandboxUnavailable(unavailable_message())

    async def run(self) -> dict[str, Any]:
        self._check_code_isolation()
        run_id = self._prepare_run()
        per_model = self._units(run_id)
        self._closing = asyncio.Event()
        queue: asyncio.Queue[ItemResult | None] = asyncio.Queue()
        writer = asyncio.create_task(self._writer(queue))
        t0 = time.perf_counter()
        status = "interrupted"
        try:
            for model in self.models:
                self.targets[model] = open_target(model, self.cfg, self.options.via_gateway, self.options.api_key)
            await asyncio.gather(*(self.targets[m].start() for m in self.models if per_model[m]))
            workers = []
            for model, units in per_model.items():
                target = self.targets[model]
                total = sum(len(self._chosen(s)) for s in self.suites)
                self.progress.start(model, total, total - len(units))
                pending: asyncio.Queue[Unit] = asyncio.Queue()
                for u in units:
                    pending.put_nowait(u)
                width = max(1, min(self.options.concurrency, target.deployment.max_concurrency, len(units) or 1))
                workers += [asyncio.create_task(self._worker(run_id, target, pending, queue)) for _ in range(width)]
            await asyncio.gather(*workers)
            status = "finished"
        finally:
            self._closing.set()
            await queue.put(None)
            with contextlib.suppress(Exception):
                await asyncio.shield(writer)
            self.store.set_status(run_id, status)
            for t in [*self.targets.values(), *self._judges.values()]:
                with contextlib.suppress(Exception):
                    await t.close()
        return self.summary(run_id, time.perf_counter() - t0)

    async def _worker(self, run_id: str, target: Target, pending: asyncio.Queue[Unit],
                      out: asyncio.Queue[ItemResult | None]) -> None:
        while True:
            try:
                unit = pending.get_nowait()
            except asyncio.QueueEmpty:
                return
            out.put_nowait(await self._evaluate(run_id, unit, target))
            self.progress.advance(unit.model)

    async def _writer(self, queue: asyncio.Queue[ItemResult | None]) -> None:
        """Writes what finished in the last `FLUSH_SECONDS` in one transaction: a kill loses at most
        that much work, and the store is not asked for a commit per item."""
        closing = False
        while not closing:
            batch = [await queue.get()]
            if batch[0] is not None and not self._closing.is_set():
                with contextlib.suppress(TimeoutError):  # the end of the run flushes at once
                    await asyncio.wait_for(self._closing.wait(), FLUSH_SECONDS)
            while not queue.empty():
                batch.append(queue.get_nowait())
            closing = None in batch
            rows = [r for r in batch if r is not None]
            if rows:
                await asyncio.to_thread(self.store.save_items, rows)

    def summary(self, run_id: str, elapsed: float) -> dict[str, Any]:
        run = self.store.get_run(run_id) or {}
        rows = self.store.run_items([run_id])
        by: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            by.setdefault((r["suite"], r["model"]), []).append(r)
        results = []
        for (suite, model), rs in sorted(by.items()):
            scored = [r["score"] for r in rs if r["score"] is not None]
            results.append({"suite": suite, "model": model, "items": len(rs),
                            "score": round(sum(scored) / len(rs), 4) if rs else None,
                            "passed": sum(1 for r in rs if r["passed"]),
                            "errors": sum(1 for r in rs if r["error"])})
        return {"run_id": run_id, "status": run.get("status"), "resumed": self.resumed_from is not None,
                "skipped_finished": self.skipped, "elapsed_s": round(elapsed, 3),
                "suites": run.get("suites"), "models": self.models, "results": results}


def run_sync(runner: EvalRunner) -> dict[str, Any]:
    return asyncio.run(runner.run())


ProgressFactory = Callable[[], Progress]
