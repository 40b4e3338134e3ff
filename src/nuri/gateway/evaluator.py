"""classify → decide → route: the one sequence the live request and explain share.

One `Evaluator` is built with the gateway; the chat handler, the other API surfaces and
`POST /v1/nuri/explain` (and `nuri explain`) all call it, so explain is the live decision by
construction, with policy on or off (off is the null engine, not a branch here).

It fails closed: an exception while classifying or deciding becomes InternalError (500) and
nothing is forwarded; it never returns an "allow" it did not compute. A request with no route
(403 policy, 503 health, 400 strategy) comes back with the reason in `Evaluation.error`, which
the handler raises and explain shows.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request

from nuri.catalog import Deployment
from nuri.config import NuriConfig
from nuri.errors import InternalError, NuriError
from nuri.gateway import limits
from nuri.gateway.request import ParsedRequest, policy_endpoint
from nuri.observability import tracing
from nuri.policy.decision import Decision
from nuri.principal import Principal
from nuri.privacy.classify import classify_texts
from nuri.privacy.scan_cache import ScanCache
from nuri.privacy.types import Classification
from nuri.routing.router import Router, RouteStep

# One thread: the scanner is pure Python, so more threads would only share the GIL; one keeps
# large scans from piling up in parallel while the event loop keeps its share of the interpreter.
_classify_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nuri-classify")


class Engine(Protocol):
    """What the evaluator needs of a policy: PolicyEngine, or NullPolicy when policy is off."""

    classifies: bool

    def decide(self, classification: Classification, principal: Principal, requested: str,
               candidates: list[Deployment], latency_tier: str | None = None,
               endpoint: str | None = None) -> Decision: ...


@dataclass(slots=True)
class Evaluation:
    classification: Classification
    decision: Decision
    steps: list[RouteStep]
    strategy: str
    error: NuriError | None = None     # why no route exists (403 policy, 503 health, 400 strategy)

    def raise_for_route(self) -> list[RouteStep]:
        """The steps, or the reason there are none as the error the client gets."""
        if self.error is not None:
            raise self.error
        return self.steps


class Evaluator:
    def __init__(self, config: NuriConfig, scanner: Any, engine: Engine, router: Router) -> None:
        self.config = config
        self.scanner = scanner
        self.engine = engine
        self.router = router
        # per-string classification reused across a conversation's turns; lives with this scanner
        self.scan_cache = ScanCache(config.privacy.scan_cache_size) if scanner is not None else None

    @classmethod
    def from_config(cls, config: NuriConfig, router: Router) -> Evaluator:
        """What `nuri serve` builds: the scanner and packs when policy is on, the null engine when off."""
        if not config.policy.enabled:
            from nuri.policy.null import NullPolicy

            return cls(config, None, NullPolicy(), router)
        from nuri.policy.engine import PolicyEngine
        from nuri.privacy.scanner import Scanner

        return cls(config, Scanner(config.privacy), PolicyEngine.load(config.policy, config.deployments), router)

    def classify(self, req: ParsedRequest) -> Classification:
        """The request's classification (empty when the engine reads none); any failure is a 500."""
        if not self.engine.classifies:
            return Classification()
        try:
            with tracing.span("nuri.classify", endpoint=req.endpoint):
                return classify_texts(req.texts, req.unscanned, self.scanner, self.scan_cache)
        except NuriError:
            raise
        except Exception as exc:
            raise InternalError(
                f"classification failed ({type(exc).__name__}); the request was not forwarded",
                code="classification_failed",
            ) from exc

    async def classify_off_loop(self, http: Request | None, req: ParsedRequest) -> Classification | None:
        """A large body's classification, made on a worker thread so a scan of megabytes does not
        stall the event loop; None for a small one (a thread hop costs more than its scan)."""
        if not self.engine.classifies:
            return None
        declared = http.headers.get("content-length") if http is not None else None
        if declared is not None and declared.isdigit() and int(declared) <= self.config.server.classify_inline_max_bytes:
            return None
        if declared is None and req.chars * 3 <= self.config.server.classify_inline_max_bytes:
            return None
        if self.scan_cache is not None and self.scan_cache.mostly_cached(
                [t for _p, t in req.texts], self.config.server.classify_inline_max_bytes // 3):
            return None     # a long conversation whose history is cached: little left to scan
        return await asyncio.get_running_loop().run_in_executor(_classify_pool, self.classify, req)

    async def evaluate_live(self, http: Request | None, req: ParsedRequest, principal: Principal,
                            candidates: list[Deployment]) -> Evaluation:
        """`evaluate` for a request being served: large bodies classified off the event loop."""
        classification = await self.classify_off_loop(http, req)
        return self.evaluate(req, principal, candidates, classification=classification)

    def evaluate(self, req: ParsedRequest, principal: Principal, candidates: list[Deployment], *,
                 latency_tier: str | None = None, strategy: str | None = None,
                 classification: Classification | None = None) -> Evaluation:
        """Classify, decide and plan; a missing route is returned in `.error`, not raised."""
        if classification is None:
            classification = self.classify(req)
        tier = latency_tier or principal.latency_tier
        try:
            with tracing.span("nuri.decide", requested=req.model):
                decision = self.engine.decide(classification, principal, req.model, candidates, tier,
                                              endpoint=policy_endpoint(req.endpoint))
        except Exception as exc:
            raise InternalError(
                f"policy evaluation failed ({type(exc).__name__}); the request was not forwarded",
                code="policy_failed",
            ) from exc
        chosen = strategy or self.router.strategy_for(tier)
        deployments = {d.id: d for d in candidates}
        try:
            with tracing.span("nuri.route", strategy=chosen):
                steps = self.router.plan(decision, deployments, req.prompt_tokens, chosen)
            steps = limits.keep_home(steps, classification, self.config.policy.home_jurisdiction)
        except NuriError as exc:
            return Evaluation(classification, decision, [], chosen, exc)
        except Exception as exc:
            raise InternalError(f"routing failed ({type(exc).__name__}); the request was not forwarded") from exc
        return Evaluation(classification, decision, steps, chosen)
