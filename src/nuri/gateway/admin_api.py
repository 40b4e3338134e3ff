"""The admin API under /v1/nuri/admin/: teams, keys, usage and spend, audit, catalog and policy.

Every handler is a thin HTTP shell over the ledger's service functions (the same ones `nuri keys`,
`nuri teams`, `nuri usage` and `nuri audit` call) or the gateway's reload. Bodies and answers are
pydantic models, and `ROUTES` names each route's models, so the OpenAPI document served at
/v1/nuri/openapi.json is generated from the very classes that validate the requests. Each route
is guarded by `require_admin` (NURI_ADMIN_KEY, or a key of a team with the `admin` role), and
every change is an admin audit record naming who made it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nuri import __version__
from nuri.errors import InvalidRequest, NuriError, ServiceUnavailable
from nuri.gateway import admin_stats
from nuri.gateway.responses import JSONResponse, error_response
from nuri.gateway.wire import read_json_body

PREFIX = "/v1/nuri/admin"
AdminCheck = Callable[[Request], Awaitable[str]]


# --- models: request bodies and query strings --------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeamUpdate(_Strict):
    """Settings to change; fields left out keep their value."""

    budget: float | None = Field(None, ge=0, description="budget per ledger.budget_period, in money.currency")
    rpm: int | None = Field(None, ge=0, description="requests per minute for the whole team")
    tpm: int | None = Field(None, ge=0, description="tokens per minute for the whole team")
    tags: list[str] | None = Field(None, description="policy tags of the team (replace the current set)")
    roles: list[str] | None = Field(None, description="roles (replace the current set); `admin` opens this API")
    latency_tier: Literal["interactive", "standard", "batch"] | None = None
    clear: list[Literal["budget", "rpm", "tpm"]] = Field(default_factory=list, description="limits to remove")


class KeyCreate(_Strict):
    team: str = Field(description="the team the key belongs to (created if new)")
    user_id: str | None = Field(None, description="the person the key is issued to (a per-user key)")
    name: str | None = Field(None, max_length=128, description="a label")
    expires_at: str | None = Field(None, description="ISO 8601 time or a duration from now (90d, 12h, 30m)")
    rpm: int | None = Field(None, ge=0, description="requests per minute for this key")
    tpm: int | None = Field(None, ge=0, description="tokens per minute for this key")
    models: list[str] | None = Field(None, description="models and aliases the key may use; none: any")
    budget: float | None = Field(None, ge=0, description="sets the team's budget too")
    team_rpm: int | None = Field(None, ge=0, description="sets the team's requests per minute too")
    team_tpm: int | None = Field(None, ge=0, description="sets the team's tokens per minute too")
    workload: str | None = Field(None, description="the workload its requests belong to when they name none")


class KeyRotate(_Strict):
    grace_seconds: int = Field(0, ge=0, le=30 * 86400, description="the old key keeps working this long; 0: revoked now")
    expires_at: str | None = Field(None, description="the new key's expiry; default: the old key's")


class KeyQuery(_Strict):
    team: str | None = None
    user_id: str | None = None


class UsageQuery(_Strict):
    by: str = Field("day,team,deployment", description="comma-separated: day, team, key, deployment")
    team: str | None = None
    key_id: str | None = None
    deployment: str | None = None
    since: str | None = Field(None, description="first day, YYYY-MM-DD")
    until: str | None = Field(None, description="last day, YYYY-MM-DD")
    format: Literal["json", "csv"] = "json"


class AuditExportQuery(_Strict):
    since: str | None = Field(None, description="records at or after this ISO 8601 time")
    until: str | None = Field(None, description="records before this ISO 8601 time")
    from_seq: int | None = Field(None, ge=1)
    to_seq: int | None = Field(None, ge=1)
    kind: list[Literal["request", "admin", "attempt"]] | None = Field(None, description="comma-separated kinds")
    format: Literal["jsonl", "csv"] = "jsonl"


# --- models: answers ------------------------------------------------------------------------


class Team(BaseModel):
    name: str
    budget: float | None
    rpm: int | None
    tpm: int | None
    tags: list[str]
    roles: list[str]
    latency_tier: str
    created_at: str


class TeamList(BaseModel):
    data: list[Team]


class Key(BaseModel):
    key_id: str
    team: str
    user_id: str | None
    name: str | None
    status: Literal["active", "revoked", "expired"]
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    rpm: int | None
    tpm: int | None
    models: list[str] | None
    workload: str | None = None


class KeyList(BaseModel):
    data: list[Key]


class NewKey(BaseModel):
    key: str = Field(description="the secret, shown once; only its salted hash is stored")
    key_id: str
    team: str
    user_id: str | None = None
    expires_at: str | None = None


class Revoked(BaseModel):
    key_id: str
    revoked: bool


class UsageRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    day: str | None = None
    team: str | None = None
    key_id: str | None = None
    deployment: str | None = None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    currency: str


class UsageReport(BaseModel):
    data: list[UsageRow]
    currency: str


class Verification(BaseModel):
    ok: bool
    checked: int
    head_seq: int
    first_bad_seq: int | None
    request_id: str | None
    reason: str | None
    checkpoints: int


class CatalogView(BaseModel):
    generation: int
    deployments: list[dict[str, Any]]
    aliases: dict[str, list[str]]
    currency: str | None
    rates: dict[str, float]
    strategy: str


class PolicyRule(BaseModel):
    id: str
    pack: str
    action: str
    citation: str


class PolicyView(BaseModel):
    generation: int
    enabled: bool
    packs: list[str]
    files: list[str]
    disabled_rules: list[str]
    rules: list[PolicyRule]


class ReloadResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    reloaded: bool
    generation: int


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class Error(BaseModel):
    """Every refusal, as the rest of the API answers it."""

    error: ErrorBody


# --- handlers -------------------------------------------------------------------------------


def _ledger(request: Request) -> Any:
    ledger = request.app.state.gateway.ledger
    if ledger is None:
        raise ServiceUnavailable("the ledger is disabled (ledger.enabled: false): no teams, keys or audit",
                                 code="ledger_disabled")
    return ledger


async def _body(request: Request, model: type[BaseModel]) -> Any:
    raw = await read_json_body(request, 1 << 20)
    return _validate(model, raw)


def _query(request: Request, model: type[BaseModel]) -> Any:
    raw: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        field = model.model_fields.get(name)
        is_list = field is not None and "list" in str(field.annotation)
        raw[name] = [v for v in value.split(",") if v] if is_list else value
    return _validate(model, raw)


def _validate(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"{where or 'body'}: {first['msg']}", param=where) from exc


def _key(info: Any) -> Key:
    return Key(key_id=info.key_id, team=info.team, user_id=info.user_id, name=info.name, status=info.status(),
               created_at=info.created_at, expires_at=info.expires_at, revoked_at=info.revoked_at, rpm=info.rpm,
               tpm=info.tpm, models=info.models, workload=info.workload)


async def list_teams(request: Request, actor: str) -> BaseModel:
    """Every team with its limits, tags, roles and latency tier."""
    return TeamList(data=[Team(**asdict(t)) for t in await _ledger(request).list_teams()])


async def get_team(request: Request, actor: str) -> BaseModel:
    """One team."""
    return Team(**asdict(await _ledger(request).get_team(request.path_params["team"])))


async def put_team(request: Request, actor: str) -> BaseModel:
    """Create a team or change its settings; policy reads new tags, roles and tier from the next request."""
    body: TeamUpdate = await _body(request, TeamUpdate)
    info = await _ledger(request).set_team(
        request.path_params["team"], budget=body.budget, rpm=body.rpm, tpm=body.tpm, tags=body.tags,
        roles=body.roles, latency_tier=body.latency_tier, clear=tuple(body.clear), actor=actor)
    return Team(**asdict(info))


async def list_keys(request: Request, actor: str) -> BaseModel:
    """Keys (never their secrets), optionally of one team or one user."""
    query: KeyQuery = _query(request, KeyQuery)
    return KeyList(data=[_key(k) for k in await _ledger(request).list_keys(query.team, query.user_id)])


async def create_key(request: Request, actor: str) -> BaseModel:
    """Create a key, per user if `user_id` is given, with an optional expiry; the key is shown once."""
    body: KeyCreate = await _body(request, KeyCreate)
    ledger = _ledger(request)
    new = await ledger.create_key(body.team, budget=body.budget, rpm=body.rpm, tpm=body.tpm, team_rpm=body.team_rpm,
                                  team_tpm=body.team_tpm, models=body.models, name=body.name,
                                  expires_at=body.expires_at, user_id=body.user_id, workload=body.workload,
                                  actor=actor)
    info = await ledger.get_key(new.key_id)
    return NewKey(key=new.key, key_id=new.key_id, team=new.team, user_id=info.user_id, expires_at=info.expires_at)


async def get_key(request: Request, actor: str) -> BaseModel:
    """One key's facts."""
    return _key(await _ledger(request).get_key(request.path_params["key_id"]))


async def revoke_key(request: Request, actor: str) -> BaseModel:
    """Revoke a key: every replica refuses it from the next request on."""
    key_id = request.path_params["key_id"]
    ledger = _ledger(request)
    await ledger.get_key(key_id)                       # 404 for an unknown id
    return Revoked(key_id=key_id, revoked=await ledger.revoke_key(key_id, actor=actor))


async def rotate_key(request: Request, actor: str) -> BaseModel:
    """A new key with the same team, user, limits and models; the old one is revoked or expires after a grace."""
    body: KeyRotate = await _body(request, KeyRotate)
    ledger = _ledger(request)
    new = await ledger.rotate_key(request.path_params["key_id"], grace_seconds=body.grace_seconds,
                                  expires_at=body.expires_at, actor=actor)
    info = await ledger.get_key(new.key_id)
    return NewKey(key=new.key, key_id=new.key_id, team=new.team, user_id=info.user_id, expires_at=info.expires_at)


async def usage(request: Request, actor: str) -> BaseModel | Response:
    """Requests, tokens and spend per day, team, key and deployment, as JSON or CSV."""
    query: UsageQuery = _query(request, UsageQuery)
    ledger = _ledger(request)
    rows = await ledger.usage_report(by=tuple(d.strip() for d in query.by.split(",") if d.strip()),
                                     team=query.team, key_id=query.key_id, deployment=query.deployment,
                                     since=query.since, until=query.until)
    if query.format == "csv":
        from nuri.ledger.audit.reports import usage_csv

        return Response(usage_csv(rows), media_type="text/csv; charset=utf-8")
    return UsageReport(data=[UsageRow(**r) for r in rows], currency=ledger.money.currency)


async def audit_verify(request: Request, actor: str) -> BaseModel:
    """Check the whole chain and its signed checkpoints."""
    result = await _ledger(request).verify()
    return Verification(ok=result.ok, checked=result.checked, head_seq=result.head_seq,
                        first_bad_seq=result.first_bad_seq, request_id=result.first_bad_request_id,
                        reason=result.reason, checkpoints=result.checkpoints)


async def audit_export(request: Request, actor: str) -> Response:
    """Audit records in a range of times, sequence numbers or kinds, as JSON lines or CSV."""
    from nuri.ledger.audit.export import Range

    query: AuditExportQuery = _query(request, AuditExportQuery)
    for name in ("since", "until"):
        value = getattr(query, name)
        if value is not None:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as exc:
                raise InvalidRequest(f"{name} must be an ISO 8601 time", param=name) from exc
    span = Range(since=query.since, until=query.until, from_seq=query.from_seq, to_seq=query.to_seq,
                 kinds=tuple(query.kind) if query.kind else None)
    text, count = await _ledger(request).export_audit(query.format, span)
    media = "text/csv; charset=utf-8" if query.format == "csv" else "application/x-ndjson"
    return Response(text, media_type=media, headers={"x-nuri-records": str(count)})


async def catalog(request: Request, actor: str) -> BaseModel:
    """The running catalog: deployments (public facts), aliases, currency and rates, generation."""
    gw = request.app.state.gateway
    generation = gw.generation
    config = generation.config
    return CatalogView(generation=generation.number, deployments=[d.public_view() for d in config.deployments],
                       aliases=generation.catalog.aliases, currency=config.money.currency, rates=config.money.rates,
                       strategy=config.routing.strategy)


async def policy(request: Request, actor: str) -> BaseModel:
    """The running policy: packs, files, switched-off rules and every rule in load order."""
    generation = request.app.state.gateway.generation
    settings = generation.config.policy
    rules = [PolicyRule(id=lr.rule.id, pack=lr.pack, action=str(lr.rule.action), citation=lr.rule.citation)
             for lr in getattr(generation.evaluator.engine, "rules", [])]
    return PolicyView(generation=generation.number, enabled=settings.enabled, packs=settings.packs,
                      files=settings.files, disabled_rules=settings.disabled_rules, rules=rules)


async def reload(request: Request, actor: str) -> BaseModel:
    """Re-read the config file and swap catalog, aliases, policy and routing in whole; a file that
    fails to load changes nothing. Requests already running finish on the config they started with."""
    return ReloadResult(**await request.app.state.gateway.reload(actor))


# --- routes and the OpenAPI document --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    method: str
    path: str
    handler: Callable[[Request, str], Awaitable[Any]]
    answer: type[BaseModel] | None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    media: str = "application/json"
    tag: str = "admin"


ROUTES: tuple[Spec, ...] = (
    Spec("GET", "/teams", list_teams, TeamList, tag="teams"),
    Spec("GET", "/teams/{team}", get_team, Team, tag="teams"),
    Spec("PUT", "/teams/{team}", put_team, Team, body=TeamUpdate, tag="teams"),
    Spec("GET", "/keys", list_keys, KeyList, query=KeyQuery, tag="keys"),
    Spec("POST", "/keys", create_key, NewKey, body=KeyCreate, tag="keys"),
    Spec("GET", "/keys/{key_id}", get_key, Key, tag="keys"),
    Spec("POST", "/keys/{key_id}/revoke", revoke_key, Revoked, tag="keys"),
    Spec("POST", "/keys/{key_id}/rotate", rotate_key, NewKey, body=KeyRotate, tag="keys"),
    Spec("GET", "/usage", usage, UsageReport, query=UsageQuery, tag="usage"),
    Spec("GET", "/audit/verify", audit_verify, Verification, tag="audit"),
    Spec("GET", "/audit/export", audit_export, None, query=AuditExportQuery, media="application/x-ndjson",
         tag="audit"),
    Spec("GET", "/catalog", catalog, CatalogView, tag="config"),
    Spec("GET", "/policy", policy, PolicyView, tag="config"),
    Spec("POST", "/reload", reload, ReloadResult, tag="config"),
    Spec("POST", "/catalog/reload", reload, ReloadResult, tag="config"),
    Spec("POST", "/policy/reload", reload, ReloadResult, tag="config"),
)


def _endpoint(spec: Spec, require_admin: AdminCheck) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            actor = await require_admin(request)
            answer = await spec.handler(request, actor)
        except NuriError as exc:
            return error_response(exc)
        if isinstance(answer, Response):
            return answer
        return JSONResponse(answer.model_dump(mode="json", exclude_unset=True))   # a usage row: its dimensions only

    endpoint.__name__ = spec.handler.__name__
    return endpoint


def routes(require_admin: AdminCheck) -> list[Route]:
    out = [Route(PREFIX + s.path, _endpoint(s, require_admin), methods=[s.method]) for s in ROUTES]
    out.append(Route("/v1/nuri/openapi.json", openapi_endpoint, methods=["GET"]))
    return out


async def openapi_endpoint(request: Request) -> Response:
    return JSONResponse(openapi())


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin API, generated from `ROUTES` and their models."""
    models = {m for s in ROUTES for m in (s.answer, s.body) if m is not None} | {Error}
    keyed, defs = models_json_schema([(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
                                     ref_template="#/components/schemas/{model}")
    schemas = dict(defs.get("$defs", {}))
    error_ref = keyed[(Error, "validation")]
    paths: dict[str, dict[str, Any]] = {}
    for spec in ROUTES:
        doc = (spec.handler.__doc__ or "").strip()
        op: dict[str, Any] = {
            "operationId": f"{spec.handler.__name__}_{spec.method.lower()}_{spec.path.strip('/').replace('/', '_')}"
                           .replace("{", "").replace("}", ""),
            "summary": doc.split("\n")[0], "tags": [spec.tag], "security": [{"bearer": []}],
            "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                           for p in _path_params(spec.path)],
            "responses": {"default": {"description": "an error", "content": {"application/json": {"schema": error_ref}}}},
        }
        if spec.query is not None:
            for name, field in spec.query.model_fields.items():
                schema = spec.query.model_json_schema()["properties"][name]
                op["parameters"].append({"name": name, "in": "query", "required": field.is_required(),
                                         "description": field.description or "", "schema": schema})
        if spec.body is not None:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": keyed[(spec.body, "validation")]}}}
        if spec.answer is not None:
            content = {"application/json": {"schema": keyed[(spec.answer, "validation")]}}
            if spec.query is not None and "format" in spec.query.model_fields:
                content["text/csv"] = {"schema": {"type": "string"}}
        else:
            content = {spec.media: {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}
        op["responses"]["200"] = {"description": "OK", "content": content}
        paths.setdefault(PREFIX + spec.path, {})[spec.method.lower()] = op
    for path, ops in admin_stats.openapi_paths(error_ref).items():     # the console's reads
        paths.setdefault(path, {}).update(ops)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Nuri admin API", "version": __version__,
                 "description": "Teams, keys, usage and spend, audit, catalog and policy of a Nuri gateway. "
                                "Send NURI_ADMIN_KEY, or a key of a team with the admin role, as a bearer token."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
