"""Prometheus metrics for /metrics, named after the OpenTelemetry GenAI conventions where they apply.

`REGISTRY` is what the gateway exposes (behind NURI_ADMIN_KEY). Labels carry teams, deployments,
jurisdictions, actions and rule ids — configuration names, never request content. The requested
model is the one label a client chooses: the record step writes `UNKNOWN_MODEL` for a name outside
the catalog (an invented one, or personal data typed into `model`), so the number of series stays
bounded by the catalog.
`Ledger.finish` (through the audit trail) calls `observe(record)`; the gateway calls `set_circuit_state` and may call
`observe_ttft` / `observe_overhead` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from nuri.ledger.audit.records import AuditRecord

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)

REQUESTS = Counter(
    "nuri_requests", "Requests by endpoint, team, deployment and outcome",
    ["endpoint", "team", "deployment", "outcome", "status"], registry=REGISTRY,
)
TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage", "Tokens per request (gen_ai.client.token.usage)",
    ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model",
     "gen_ai_token_type"],
    buckets=_TOKEN_BUCKETS, registry=REGISTRY,
)
TOKENS = Counter(
    "nuri_tokens", "Tokens by team, deployment and type (input|output)",
    ["team", "deployment", "type"], registry=REGISTRY,
)
COST = Counter(
    "nuri_cost", "Cost in the catalog currency by team and deployment",
    ["team", "deployment", "currency"], registry=REGISTRY,
)
DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds", "Request duration (gen_ai.client.operation.duration)",
    ["gen_ai_operation_name", "gen_ai_request_model", "gen_ai_response_model", "error_type"],
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
TTFT = Histogram(
    "gen_ai_server_time_to_first_token_seconds", "Time to first token (gen_ai.server.time_to_first_token)",
    ["gen_ai_operation_name", "gen_ai_request_model", "gen_ai_response_model"],
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
DECISIONS = Counter(
    "nuri_policy_decisions", "Policy decisions by action and matched rule", ["action", "rule"],
    registry=REGISTRY,
)
JURISDICTION = Counter(
    "nuri_traffic_by_jurisdiction", "Requests served per jurisdiction of the deployment", ["jurisdiction"],
    registry=REGISTRY,
)
CIRCUIT = Gauge(
    "nuri_circuit_state", "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open", ["deployment"],
    registry=REGISTRY,
)
BUDGET_REMAINING = Gauge(
    "nuri_budget_remaining", "Budget left this period per team (catalog currency)", ["team"],
    registry=REGISTRY,
)
LIMITED = Counter(
    "nuri_rate_limited", "Admissions refused, by limit (rpm|tpm|budget)", ["limit"], registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "nuri_auth_failures",
    "Refused credentials by reason (missing|malformed|invalid|revoked|rate_limited: the client address "
    "was over its limit of refused credentials)",
    ["reason"], registry=REGISTRY,
)
UNKNOWN_MODEL = "<unknown>"
AUDIT_BATCH = Histogram(
    "nuri_audit_batch_records", "Audit records per group commit", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
AUDIT_COMMIT = Histogram(
    "nuri_audit_commit_seconds", "Time of one audit group commit",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1), registry=REGISTRY,
)
AUDIT_SPOOL_BACKLOG = Gauge(
    "nuri_audit_spool_backlog", "Acknowledged audit records in this process's spool, not yet in the chain",
    registry=REGISTRY,
)
OVERHEAD = Histogram(
    "nuri_gateway_overhead_seconds", "Time the gateway adds around the upstream call",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05), registry=REGISTRY,
)

REPLIES_CHECKED = Counter(
    "nuri_replies_checked", "Replies checked per deployment, by check (terminology|language)",
    ["deployment", "check"], registry=REGISTRY,
)
REPLIES_FLAGGED = Counter(
    "nuri_replies_flagged",
    "Replies a check acted on per deployment: terminology corrected (annotate|rewrite|block) or flagged a "
    "term, or the reply was in a language the request was not; divide by nuri_replies_checked for a rate",
    ["deployment", "check"], registry=REGISTRY,
)
REPLY_TERMS = Counter(
    "nuri_reply_terms", "Terminology occurrences acted on, by deployment, term id and action",
    ["deployment", "term", "action"], registry=REGISTRY,
)
LANGUAGE_MISSES = Counter(
    "nuri_reply_language_misses", "Replies in another language than asked, by deployment, asked and replied",
    ["deployment", "asked", "replied"], registry=REGISTRY,
)

_CHILDREN: dict[tuple[Any, tuple[str, ...]], Any] = {}
_CHILDREN_MAX = 10_000


def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: prometheus-client validates the labels and takes a
    lock on every `labels()` call, which cost more than the rest of `observe` together. Label
    values are mostly configuration names (teams, deployments, rules); the cache is bounded all
    the same, as the requested model name comes from the client."""
    key = (metric, labels)
    child = _CHILDREN.get(key)
    if child is None:
        if len(_CHILDREN) >= _CHILDREN_MAX:
            _CHILDREN.clear()
        child = _CHILDREN[key] = metric.labels(*labels)
    return child


_CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}


def _operation(endpoint: str) -> str:
    if "embedding" in endpoint:
        return "embeddings"
    if endpoint.endswith("/completions") and "chat" not in endpoint:
        return "text_completion"
    return "chat"


def observe(record: AuditRecord, provider: str = "") -> None:
    """Count one finished request (admin records are not traffic and are skipped)."""
    if record.kind != "request":
        return
    op = _operation(record.endpoint)
    deployment = record.deployment or "-"
    requested = record.model_requested or "-"
    _child(REQUESTS, record.endpoint, record.team, deployment, record.outcome, str(record.status)).inc()
    for token_type, count in (("input", record.prompt_tokens), ("output", record.completion_tokens)):
        if count:
            _child(TOKEN_USAGE, op, provider, requested, deployment, token_type).observe(count)
            _child(TOKENS, record.team, deployment, token_type).inc(count)
    if record.cost:
        _child(COST, record.team, deployment, record.currency).inc(record.cost)
    _child(DURATION, op, requested, deployment, record.error_code or "").observe(record.latency_ms / 1000)
    if record.ttft_ms is not None:
        _child(TTFT, op, requested, deployment).observe(record.ttft_ms / 1000)
    if record.action:
        for rule in record.rule_ids or ["-"]:
            _child(DECISIONS, record.action, rule).inc()
    if record.jurisdiction:
        _child(JURISDICTION, record.jurisdiction).inc()
    reply = record.detail.get("reply") if isinstance(record.detail, dict) else None
    if reply:
        observe_reply(deployment, reply)


def observe_reply(deployment: str, reply: dict[str, Any]) -> None:
    """Count what the reply checks found (the audit record's `reply` detail: ids and names only)."""
    terms = reply.get("terms")
    if isinstance(terms, dict):
        _child(REPLIES_CHECKED, deployment, "terminology").inc()
        if terms:
            _child(REPLIES_FLAGGED, deployment, "terminology").inc()
        for action, counts in terms.items():
            for term, n in counts.items():
                _child(REPLY_TERMS, deployment, term, action).inc(n)
    language = reply.get("language")
    if isinstance(language, dict):
        missed = language.get("retried_from")
        if missed:                        # the first deployment missed; the retry's reply is judged below
            _child(REPLIES_CHECKED, missed, "language").inc()
            _child(REPLIES_FLAGGED, missed, "language").inc()
        _child(REPLIES_CHECKED, deployment, "language").inc()
        if language.get("miss"):
            asked = language.get("asked") or {}
            top = max(asked, key=asked.__getitem__) if asked else "-"
            _child(REPLIES_FLAGGED, deployment, "language").inc()
            _child(LANGUAGE_MISSES, deployment, top, str(language.get("replied"))).inc()


def set_circuit_state(deployment: str, state: str | int) -> None:
    _child(CIRCUIT, deployment).set(_CIRCUIT_VALUES.get(state, 0) if isinstance(state, str) else state)


def set_budget_remaining(team: str, remaining: float) -> None:
    BUDGET_REMAINING.labels(team).set(remaining)


def observe_overhead(seconds: float) -> None:
    OVERHEAD.observe(seconds)


def render() -> tuple[bytes, str]:
    """(body, content type) for the /metrics response."""
    return generate_latest(REGISTRY), CONTENT_TYPE


render_latest = render
