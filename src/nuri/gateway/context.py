"""Per-request facts gathered along the pipeline, for headers, metrics and the audit record."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

from nuri.principal import ANONYMOUS, Principal

# Request ids: a random prefix per process and a counter, 24 hex digits like a truncated UUID.
# Unique across replicas by the prefix (40 random bits), and without a system call per request.
_ID_PREFIX = os.urandom(5).hex()
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(3), "big") << 24)


def new_request_id() -> str:
    return f"req_{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFF:014x}"


def _reseed() -> None:
    """A forked worker gets its own prefix, so two workers never hand out the same id."""
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = os.urandom(5).hex()
    _ID_COUNTER = itertools.count(int.from_bytes(os.urandom(3), "big") << 24)


os.register_at_fork(after_in_child=_reseed)


@dataclass(slots=True)
class RequestContext:
    endpoint: str
    request_id: str = field(default_factory=lambda: new_request_id())
    started: float = field(default_factory=time.perf_counter)
    principal: Principal = ANONYMOUS
    requested: str | None = None
    classification: Any = None
    decision: Any = None
    step: Any = None                       # the RouteStep that served the request
    attempts: list[Any] = field(default_factory=list)
    admission: Any = None
    usage: dict[str, int] = field(default_factory=dict)
    first_token_at: float | None = None
    stream: bool = False
    workload: str | None = None            # the planned workload the request belongs to
    citations: list[Any] = field(default_factory=list)   # RAG passages injected (nuri.rag.step)
    replies: Any = None                    # terminology, label, language (nuri.gateway.replies.ReplyRules)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def ttft_ms(self) -> float | None:
        return None if self.first_token_at is None else (self.first_token_at - self.started) * 1000

    def headers(self) -> dict[str, str]:
        """x-nuri-* headers: which deployment served, where, under which action and rules. The one
        place they are built: a refusal (nothing eligible) gets `x-nuri-action: block` and the
        refusing rules from its decision here; routing only raises the 403."""
        out = {"x-nuri-request-id": self.request_id}
        if self.step is not None:
            dep = self.step.deployment
            out["x-nuri-deployment"] = dep.id
            out["x-nuri-jurisdiction"] = dep.jurisdiction
            out["x-nuri-action"] = "pseudonymize" if self.step.mask_types else "allow"
        elif self.decision is not None:
            out["x-nuri-action"] = self.decision.action
        unscanned = getattr(self.classification, "unscanned", None)
        if unscanned:
            out["x-nuri-unscanned"] = ",".join(sorted(set(unscanned)))
        if self.decision is not None:
            out["x-nuri-policy"] = ",".join(self.decision.rule_ids) or "none"
            if self.decision.label:
                out["x-nuri-ai-generated"] = "true"
        if self.admission is not None and getattr(self.admission, "budget_warning", False):
            out["x-nuri-budget-warning"] = "true"
        if self.replies is not None:
            out.update(self.replies.headers())
        return out
