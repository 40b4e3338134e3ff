"""/console: the operations console's routes. Server-rendered Jinja2 pages over the admin API.

Login turns the admin key (or an admin team's key) into a server-side session; every page reads
through `AdminClient` with that credential, and every change carries the session's CSRF token.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from nuri.web import charts, i18n
from nuri.web.client import AdminClient, ApiError
from nuri.web.sessions import COOKIE, Session, SessionStore, same_token

HERE = Path(__file__).parent
BASE = "/console"
LOGIN_CSRF = "nuri_console_login"
ACTIONS = ("allow", "pseudonymize", "block")
HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-store",
    "x-frame-options": "DENY",
}

_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
NAV = ("overview", "spend", "deployments", "audit", "policy", "keys", "evals", "plan")


def _store(request: Request) -> SessionStore:
    store = getattr(request.app.state, "console_sessions", None)
    if store is None:
        store = request.app.state.console_sessions = SessionStore()
    return store


def _lang(request: Request) -> str:
    return i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def render(request: Request, template: str, status: int = 200, session: Session | None = None,
           **values: Any) -> HTMLResponse:
    lang = _lang(request)
    html = _env.get_template(template).render(
        t=i18n.translator(lang), lang=lang, langs=i18n.LANGS, session=session, nav=NAV, base=BASE,
        here=request.url.path, here_query=request.url.query, **values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the last value of each); the body is read once and cached."""
    if "multipart/" in request.headers.get("content-type", ""):
        return {}
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


def _client(request: Request, session: Session) -> AdminClient:
    peer = (request.client.host, request.client.port) if request.client else ("127.0.0.1", 0)
    return AdminClient(request.app, session.credential, peer)


Page = Callable[[Request, Session, AdminClient], Awaitable[Response]]


def page(handler: Page, *, change: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A page behind the session; `change`: a POST that must carry the session's CSRF token."""

    async def endpoint(request: Request) -> Response:
        session = _store(request).get(request.cookies.get(COOKIE))
        if session is None:
            if request.headers.get("x-console-fetch"):
                return Response(status_code=401, headers=HEADERS)
            query = "?expired=1" if request.cookies.get(COOKIE) else ""
            target = RedirectResponse(f"{BASE}/login{query}", status_code=303, headers=HEADERS)
            target.delete_cookie(COOKIE, path=BASE)
            return target
        if change:
            form = await _form(request)
            given = request.headers.get("x-csrf-token") or str(form.get("csrf") or "") or None
            if not same_token(given, session.csrf):
                return render(request, "error.html", 403, session, message=i18n.translator(_lang(request))(
                    "csrf_failed"))
        async with _client(request, session) as api:
            try:
                return await handler(request, session, api)
            except ApiError as exc:
                if exc.status in (401, 403):          # the key was revoked or lost its role meanwhile
                    _store(request).drop(request.cookies.get(COOKIE))
                return render(request, "error.html", exc.status, session, message=exc.message, code=exc.code)

    endpoint.__name__ = handler.__name__
    return endpoint


# --- login, logout, language ------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    token = secrets.token_urlsafe(32)
    t = i18n.translator(_lang(request))
    notice = t("session_expired") if request.query_params.get("expired") else None
    response = render(request, "login.html", login_csrf=token, notice=notice)
    response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=_secure(request), path=BASE)
    return response


async def login(request: Request) -> Response:
    form = await _form(request)
    t = i18n.translator(_lang(request))
    given = str(form.get("csrf") or "") or None
    if not same_token(given, request.cookies.get(LOGIN_CSRF) or "\0"):
        return render(request, "error.html", 403, message=t("csrf_failed"))
    credential = str(form.get("credential") or "").strip()
    actor = None
    if credential:
        peer = (request.client.host, request.client.port) if request.client else ("127.0.0.1", 0)
        try:
            async with AdminClient(request.app, credential, peer) as api:
                actor = (await api.get("/admin/whoami"))["actor"]
        except (ApiError, ValueError):                # refused, or a credential no header can carry
            actor = None
    if actor is None or actor == "loopback":      # open mode lets any caller in: the console wants a real key
        token = secrets.token_urlsafe(32)
        refused = render(request, "login.html", 401, login_csrf=token, error=t("login_failed"))
        refused.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=_secure(request), path=BASE)
        return refused
    session_id, _ = _store(request).create(credential, actor)
    response = RedirectResponse(f"{BASE}/overview", status_code=303, headers=HEADERS)
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", secure=_secure(request), path=BASE)
    response.delete_cookie(LOGIN_CSRF, path=BASE)
    return response


async def logout(request: Request, session: Session, api: AdminClient) -> Response:
    _store(request).drop(request.cookies.get(COOKIE))
    response = RedirectResponse(f"{BASE}/login", status_code=303, headers=HEADERS)
    response.delete_cookie(COOKIE, path=BASE)
    return response


async def language(request: Request) -> Response:
    lang = request.path_params["lang"]
    target = request.query_params.get("next") or f"{BASE}/overview"
    if not target.startswith(BASE + "/") or "//" in target or "\\" in target:
        target = f"{BASE}/overview"
    response = RedirectResponse(target, status_code=303, headers=HEADERS)
    if lang in i18n.LANGS:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="strict", secure=_secure(request),
                            path=BASE)
    return response


async def root(request: Request) -> Response:
    return RedirectResponse(f"{BASE}/overview", status_code=303, headers=HEADERS)


# --- pages ----------------------------------------------------------------------------------------


async def _overview_values(request: Request, api: AdminClient) -> dict[str, Any]:
    stats = await api.get("/admin/stats/overview", minutes=60)
    t = i18n.translator(_lang(request))
    routed = stats["in_country"] + stats["abroad"]
    stats["share"] = round(100 * stats["in_country"] / routed, 1) if routed else None
    chart = charts.bars([(p["minute"], p["requests"]) for p in stats["series"]], t("per_minute_chart"))
    return {"stats": stats, "chart": chart}


async def overview(request: Request, session: Session, api: AdminClient) -> Response:
    return render(request, "overview.html", session=session, **await _overview_values(request, api))


async def overview_live(request: Request, session: Session, api: AdminClient) -> Response:
    return render(request, "overview_live.html", session=session, **await _overview_values(request, api))


async def spend(request: Request, session: Session, api: AdminClient) -> Response:
    return render(request, "spend.html", session=session, spend=await api.get("/admin/stats/spend"))


async def deployments(request: Request, session: Session, api: AdminClient) -> Response:
    return render(request, "deployments.html", session=session, data=await api.get("/admin/stats/deployments"))


AUDIT_FILTERS = ("team", "rule", "action", "deployment", "since", "until")


async def _audit_choices(api: AdminClient) -> dict[str, Any]:
    teams = await api.get("/admin/teams")
    policy = await api.get("/admin/policy")
    catalog = await api.get("/admin/catalog")
    return {"teams": [t["name"] for t in teams["data"]], "rules": [r["id"] for r in policy["rules"]],
            "deployment_ids": [d["id"] for d in catalog["deployments"]], "actions": ACTIONS}


async def audit(request: Request, session: Session, api: AdminClient,
                verification: dict[str, Any] | None = None) -> Response:
    q = request.query_params
    filters = {name: q.get(name, "") for name in AUDIT_FILTERS}
    found = await api.get("/admin/audit/records", before=q.get("before"), limit=50, **filters)
    older = None
    if found["next_before"]:
        older = "?" + urlencode({**{k: v for k, v in filters.items() if v}, "before": found["next_before"]})
    return render(request, "audit.html", session=session, filters=filters, found=found, older=older,
                  verification=verification, **await _audit_choices(api))


async def audit_verify(request: Request, session: Session, api: AdminClient) -> Response:
    return await audit(request, session, api, verification=await api.get("/admin/audit/verify"))


async def policy(request: Request, session: Session, api: AdminClient,
                 explained: dict[str, Any] | None = None, asked: dict[str, str] | None = None) -> Response:
    view = await api.get("/admin/policy")
    catalog = await api.get("/admin/catalog")
    teams = await api.get("/admin/teams")
    models = [*catalog["aliases"], *[d["id"] for d in catalog["deployments"]]]
    return render(request, "policy.html", session=session, policy=view, models=models,
                  teams=[t["name"] for t in teams["data"]], explained=explained,
                  asked=asked or {"prompt": "", "model": models[0] if models else "", "team": ""})


async def policy_explain(request: Request, session: Session, api: AdminClient) -> Response:
    form = await _form(request)
    asked = {k: str(form.get(k) or "") for k in ("prompt", "model", "team")}
    body = {"model": asked["model"] or "default", "messages": [{"role": "user", "content": asked["prompt"]}]}
    explained = await api.post("/admin/explain", body, team=asked["team"] or None)
    return await policy(request, session, api, explained=explained, asked=asked)


async def keys(request: Request, session: Session, api: AdminClient) -> Response:
    teams = await api.get("/admin/teams")
    listed = await api.get("/admin/keys")
    flash, session.flash = session.flash, None
    return render(request, "keys.html", session=session, teams=teams["data"], keys=listed["data"], flash=flash)


def _opt_int(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


def _list(value: Any) -> list[str]:
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


async def key_create(request: Request, session: Session, api: AdminClient) -> Response:
    form = await _form(request)
    body: dict[str, Any] = {"team": str(form.get("team") or "").strip()}
    for name in ("name", "user_id", "expires_at"):
        if str(form.get(name) or "").strip():
            body[name] = str(form.get(name)).strip()
    for name in ("rpm", "tpm"):
        if (value := _opt_int(form.get(name))) is not None:
            body[name] = value
    if models := _list(form.get("models")):
        body["models"] = models
    made = await api.post("/admin/keys", body)
    session.flash = made["key"]
    return RedirectResponse(f"{BASE}/keys#new-key", status_code=303, headers=HEADERS)


async def key_revoke(request: Request, session: Session, api: AdminClient) -> Response:
    await api.post(f"/admin/keys/{request.path_params['key_id']}/revoke")
    return RedirectResponse(f"{BASE}/keys", status_code=303, headers=HEADERS)


async def team_update(request: Request, session: Session, api: AdminClient) -> Response:
    form = await _form(request)
    body: dict[str, Any] = {"tags": _list(form.get("tags")), "roles": _list(form.get("roles"))}
    if str(form.get("latency_tier") or "") in ("interactive", "standard", "batch"):
        body["latency_tier"] = str(form.get("latency_tier"))
    clear = []
    for name in ("budget", "rpm", "tpm"):
        raw = str(form.get(name) or "").strip()
        if not raw:
            clear.append(name)
        else:
            body[name] = float(raw) if name == "budget" else _opt_int(raw)
    body["clear"] = clear
    await api.put(f"/admin/teams/{request.path_params['team']}", body)
    return RedirectResponse(f"{BASE}/keys", status_code=303, headers=HEADERS)


async def evals(request: Request, session: Session, api: AdminClient) -> Response:
    board = (await api.get("/admin/evals/leaderboard"))["data"]
    t = i18n.translator(_lang(request))
    return render(request, "evals.html", session=session, board=board, chart=charts.quality_cost(board, t("quality_cost")))


async def plan(request: Request, session: Session, api: AdminClient) -> Response:
    return render(request, "plan.html", session=session, plan=(await api.get("/admin/plan"))["plan"])


def routes() -> list[BaseRoute]:
    return [
        Route(BASE, root, methods=["GET"]),
        Route(f"{BASE}/", root, methods=["GET"]),
        Route(f"{BASE}/login", login_form, methods=["GET"]),
        Route(f"{BASE}/login", login, methods=["POST"]),
        Route(f"{BASE}/logout", page(logout, change=True), methods=["POST"]),
        Route(BASE + "/lang/{lang}", language, methods=["GET"]),
        Route(f"{BASE}/overview", page(overview), methods=["GET"]),
        Route(f"{BASE}/overview/live", page(overview_live), methods=["GET"]),
        Route(f"{BASE}/spend", page(spend), methods=["GET"]),
        Route(f"{BASE}/deployments", page(deployments), methods=["GET"]),
        Route(f"{BASE}/audit", page(audit), methods=["GET"]),
        Route(f"{BASE}/audit/verify", page(audit_verify, change=True), methods=["POST"]),
        Route(f"{BASE}/policy", page(policy), methods=["GET"]),
        Route(f"{BASE}/policy/explain", page(policy_explain, change=True), methods=["POST"]),
        Route(f"{BASE}/keys", page(keys), methods=["GET"]),
        Route(f"{BASE}/keys", page(key_create, change=True), methods=["POST"]),
        Route(BASE + "/keys/{key_id}/revoke", page(key_revoke, change=True), methods=["POST"]),
        Route(BASE + "/teams/{team}", page(team_update, change=True), methods=["POST"]),
        Route(f"{BASE}/evals", page(evals), methods=["GET"]),
        Route(f"{BASE}/plan", page(plan), methods=["GET"]),
        Mount(f"{BASE}/static", app=StaticFiles(directory=HERE / "static"), name="console-static"),
    ]
