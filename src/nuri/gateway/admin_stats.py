"""Admin API routes the operations console reads: who am I, overview, spend, deployments, audit
search, explain as a team, the eval leaderboard and the workload plan.

Same guard (`require_admin`) and error format as admin_api.py. Every read is bounded whatever
the length of the trail: the audit index and rollups of migration 0004 (ledger/audit/search.py)
replace scans of the record bodies. The index is kept off the request path (ledger/audit/indexer.py);
a read first catches it up on the records written since its last tick, so what it shows lags the
trail by at most `unindexed` records (only when more arrived than one catch-up takes).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nuri.errors import InvalidRequest, NuriError, ServiceUnavailable
from nuri.gateway.responses import JSONResponse, error_response

PREFIX = "/v1/nuri/admin"
AdminCheck = Callable[[Request], Awaitable[str]]
Handler = Callable[[Request, str], Awaitable[Any]]


def _ledger(request: Request) -> Any:
    ledger = request.app.state.gateway.ledger
    if ledger is None:
        raise ServiceUnavailable("the ledger is disabled (ledger.enabled: false): no audit trail to read",
                                 code="ledger_disabled")
    return ledger


async def _fresh(ledger: Any) -> int:
    """Acknowledged records into the chain, then the index caught up on them (bounded); returns how
    many records the index still lacks."""
    await ledger.writer.flush(timeout=10.0)
    await ledger.indexer.catch_up()
    return int(await ledger.indexer.lag())


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{name} must be an integer", param=name) from exc
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}", param=name)
    return value


def _time(request: Request, name: str) -> str | None:
    """An ISO 8601 time as the records hold it (UTC, ...Z); a bare date or local time is read as UTC."""
    raw = (request.query_params.get(name) or "").strip()
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(f"{name} must be an ISO 8601 time", param=name) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def whoami(request: Request, actor: str) -> dict[str, Any]:
    """Who the credential is, as admin records name it: the console's login check."""
    return {"actor": actor}


async def overview(request: Request, actor: str) -> dict[str, Any]:
    """Requests per minute, in-country and abroad, blocked and pseudonymised, top rules, over the last minutes."""
    from nuri.ledger.audit import search

    minutes = _int(request, "minutes", 60, 1, 24 * 60)
    ledger = _ledger(request)
    home = request.app.state.gateway.config.policy.home_jurisdiction
    now = datetime.now(UTC)
    start = (now - timedelta(minutes=minutes - 1)).strftime("%Y-%m-%dT%H:%M")
    unindexed = await _fresh(ledger)
    rows = await ledger.db.run_raw(lambda conn: search.rollup(conn, start))
    series = {(now - timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M"): 0 for i in range(minutes - 1, -1, -1)}
    totals: dict[str, dict[str, int]] = {}
    for bucket, name, value, n, _cost in rows:
        if name == "requests" and bucket in series:
            series[bucket] += int(n)
        totals.setdefault(name, {})
        totals[name][value] = totals[name].get(value, 0) + int(n)
    juris = totals.get("jurisdiction", {})
    actions = totals.get("action", {})
    rules = sorted(totals.get("rule", {}).items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    requests = sum(series.values())
    return {
        "minutes": minutes, "home_jurisdiction": home, "requests": requests,
        "requests_per_minute": round(requests / minutes, 2),
        "series": [{"minute": m, "requests": n} for m, n in series.items()],
        "in_country": juris.get(home, 0),
        "abroad": sum(n for j, n in juris.items() if j not in (home, "-")),
        "not_routed": juris.get("-", 0),
        "blocked": actions.get("block", 0), "pseudonymized": actions.get("pseudonymize", 0),
        "allowed": actions.get("allow", 0), "outcomes": totals.get("outcome", {}),
        "top_rules": [{"rule": r, "requests": n} for r, n in rules], "unindexed": unindexed,
    }


def _period_start(kind: str, now: datetime) -> str | None:
    if kind == "day":
        return now.strftime("%Y-%m-%d")
    if kind == "month":
        return now.strftime("%Y-%m-01")
    return None


async def spend(request: Request, actor: str) -> dict[str, Any]:
    """Spend this budget period per team (against its budget), key and deployment."""
    from nuri.ledger.audit import search
    from nuri.ledger.quota.admission import NANO

    ledger = _ledger(request)
    period = ledger.settings.budget_period
    since = _period_start(period, datetime.now(UTC))
    teams = {t.name: t for t in await ledger.list_teams()}
    by_team = await ledger.usage_report(by=("team",), since=since)
    by_dep = await ledger.usage_report(by=("deployment",), since=since)
    keys = await ledger.list_keys()
    await _fresh(ledger)
    per_key = await ledger.db.run_raw(lambda conn: search.key_spend(conn, since or "0000-00-00"))
    team_rows = []
    spent = {r["team"]: r for r in by_team}
    for name in sorted(set(teams) | set(spent)):
        row = spent.get(name, {})
        budget = teams[name].budget if name in teams else None
        cost = float(row.get("cost", 0.0))
        team_rows.append({"team": name, "budget": budget, "spent": round(cost, 6), "requests": row.get("requests", 0),
                          "share": round(cost / budget, 4) if budget else None})
    key_rows = []
    for k in keys:
        n, nanos = per_key.get(k.key_id, (0, 0))
        key_rows.append({"key_id": k.key_id, "team": k.team, "name": k.name, "user_id": k.user_id,
                         "status": k.status(), "requests": n, "spent": round(nanos / NANO, 6)})
    key_rows.sort(key=lambda r: (-r["spent"], -r["requests"], r["key_id"]))
    return {"period": period, "since": since, "currency": ledger.money.currency, "teams": team_rows,
            "keys": key_rows,
            "deployments": [{"deployment": r["deployment"], "requests": r["requests"], "spent": round(r["cost"], 6)}
                            for r in by_dep]}


async def deployments(request: Request, actor: str) -> dict[str, Any]:
    """Latency p50/p95 over each deployment's last requests, and its circuit breaker."""
    from nuri.ledger.audit import search

    gw = request.app.state.gateway
    samples = _int(request, "samples", 1000, 10, 10_000)
    home = gw.config.policy.home_jurisdiction
    health = gw.health.snapshot() if gw.health is not None else {}
    ledger = gw.ledger
    if ledger is not None:
        await _fresh(ledger)
    out = []
    for dep in gw.config.deployments:
        lat: list[float] = []
        if ledger is not None:
            lat = await ledger.db.run_raw(lambda conn, d=dep.id: search.recent_latencies(conn, d, samples))
        h = health.get(dep.id, {})
        out.append({
            "id": dep.id, "jurisdiction": dep.jurisdiction, "hosting": str(dep.hosting),
            "in_country": dep.jurisdiction == home, "circuit": h.get("state", "closed"),
            "consecutive_failures": h.get("consecutive_failures", 0), "failures": h.get("failures", 0),
            "samples": len(lat), "p50_ms": _quantile(lat, 0.5), "p95_ms": _quantile(lat, 0.95),
        })
    return {"deployments": out, "home_jurisdiction": home}


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 1)


async def audit_records(request: Request, actor: str) -> dict[str, Any]:
    """Audit records newest first, filtered by team, rule, action, deployment and time; `before` pages."""
    from nuri.ledger.audit import search

    ledger = _ledger(request)
    q = request.query_params
    f = search.Filters(team=q.get("team") or None, rule=q.get("rule") or None, action=q.get("action") or None,
                       deployment=q.get("deployment") or None, since=_time(request, "since"),
                       until=_time(request, "until"))
    before = _int(request, "before", 0, 0, 1 << 62) or None
    limit = _int(request, "limit", 50, 1, 500)
    unindexed = await _fresh(ledger)
    started = time.perf_counter()
    found = await ledger.db.run_raw(lambda conn: search.page(conn, f, before=before, limit=limit), snapshot=True)
    return {"data": found.records, "next_before": found.next_before, "scanned_to": found.scanned_to,
            "unindexed": unindexed, "elapsed_ms": round((time.perf_counter() - started) * 1000, 2)}


async def explain_as(request: Request, actor: str) -> Any:
    """Explain a chat request as a team would send it (its tags, roles and tier), without calling any model."""
    from nuri.gateway.access import candidates_for
    from nuri.gateway.context import RequestContext
    from nuri.gateway.explain import reachable
    from nuri.gateway.recording import record
    from nuri.gateway.request import endpoint_of, parse_request
    from nuri.gateway.wire import read_json_body
    from nuri.policy.explain import explain_view
    from nuri.principal import ANONYMOUS, Principal

    gw = request.app.state.gateway
    team = request.query_params.get("team") or None
    principal = ANONYMOUS
    if team and gw.ledger is not None:
        info = await gw.ledger.get_team(team)            # 404 for an unknown team
        principal = Principal(team=info.name, tags=frozenset(info.tags), roles=frozenset(info.roles),
                              latency_tier=info.latency_tier, budget=info.budget)
    ctx = RequestContext(endpoint="explain", principal=principal)
    try:
        body = await read_json_body(request, gw.config.server.max_body_bytes)
        req = parse_request(body, endpoint_of(body))
        ctx.requested = req.model
        candidates = candidates_for(gw, request, req, ctx)
        result = await gw.evaluator.evaluate_live(request, req, principal, candidates)
        ctx.classification, ctx.decision = result.classification, result.decision
        error = result.error.message if result.error is not None else None
        view = explain_view(result.classification, result.decision, result.steps, reachable(gw.catalog, None),
                            error=error)
    except NuriError as exc:
        await record(gw, ctx, status=exc.status, error=exc)
        raise
    await record(gw, ctx, status=200)
    return view


async def leaderboard(request: Request, actor: str) -> dict[str, Any]:
    """The eval leaderboard (latest result of every suite and model, with 95% confidence intervals)."""
    from nuri.evals.leaderboard import leaderboard as board
    from nuri.evals.store import database_url
    from nuri.planning.evidence import store_rows

    gw = request.app.state.gateway
    url = database_url(gw.config.ledger.database_url, gw.data_dir)
    rows = await asyncio.to_thread(store_rows, url)
    return {"data": board(rows)}


async def plan(request: Request, actor: str) -> dict[str, Any]:
    """The workload plan the gateway routes by (`workloads.routes`), or none."""
    routing = request.app.state.gateway.config.workloads.plan
    return {"plan": routing.model_dump(mode="json") if routing is not None else None}


_TIME = "ISO 8601 time (UTC when no zone is given)"
ROUTES: tuple[tuple[str, str, Handler, dict[str, tuple[str, str]]], ...] = (   # method, path, handler, query
    ("GET", "/whoami", whoami, {}),
    ("GET", "/stats/overview", overview, {"minutes": ("integer", "minutes back from now, 1 to 1440; default 60")}),
    ("GET", "/stats/spend", spend, {}),
    ("GET", "/stats/deployments", deployments, {"samples": ("integer", "latest answered requests per "
                                                                       "deployment, 10 to 10000; default 1000")}),
    ("GET", "/audit/records", audit_records, {
        "team": ("string", "records of this team"), "rule": ("string", "records that matched this rule"),
        "action": ("string", "allow, pseudonymize or block"), "deployment": ("string", "records served by it"),
        "since": ("string", _TIME + ", inclusive"), "until": ("string", _TIME + ", exclusive"),
        "before": ("integer", "cursor: records with a smaller seq (the previous answer's next_before)"),
        "limit": ("integer", "records per page, 1 to 500; default 50")}),
    ("POST", "/explain", explain_as, {"team": ("string", "explain as this team would send it")}),
    ("GET", "/evals/leaderboard", leaderboard, {}),
    ("GET", "/plan", plan, {}),
)


def _endpoint(handler: Handler, require_admin: AdminCheck) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            actor = await require_admin(request)
            answer = await handler(request, actor)
        except NuriError as exc:
            return error_response(exc)
        return JSONResponse(answer)

    endpoint.__name__ = handler.__name__
    return endpoint


def routes(require_admin: AdminCheck) -> list[Route]:
    return [Route(PREFIX + path, _endpoint(fn, require_admin), methods=[method]) for method, path, fn, _ in ROUTES]


def openapi_paths(error_schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """These routes as OpenAPI path items, for the admin API's document (answers: JSON objects)."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, fn, query in ROUTES:
        op: dict[str, Any] = {
            "operationId": f"{fn.__name__}_{method.lower()}_{path.strip('/').replace('/', '_')}",
            "summary": (fn.__doc__ or "").strip().split("\n")[0], "tags": ["console"],
            "security": [{"bearer": []}],
            "parameters": [{"name": name, "in": "query", "required": False, "description": text,
                            "schema": {"type": kind}} for name, (kind, text) in query.items()],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "default": {"description": "an error", "content": {"application/json": {"schema": error_schema}}}},
        }
        if method == "POST":
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "description": "a chat completions request body"}}}}
        paths.setdefault(PREFIX + path, {})[method.lower()] = op
    return paths
