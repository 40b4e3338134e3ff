"""`nuri keys …`, `nuri teams …`, `nuri usage` and `nuri audit …`: keys and teams, usage and spend,
the audit chain.

Each command calls the same ledger service function as the admin API (/v1/nuri/admin/…), so the
two cannot drift apart. Every command honours --data-dir / NURI_DATA_DIR and --config (for
ledger.database_url and money), so it works on the same store as the gateway, SQLite or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

T = TypeVar("T")

keys_app = typer.Typer(help="API keys: create (with expiry, per user), list, revoke, rotate.", no_args_is_help=True)
teams_app = typer.Typer(help="Teams: budgets, limits, policy tags, roles, latency tier.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit chain: verify, export, retention.", no_args_is_help=True)
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="nuri.yaml (ledger.database_url)",
                                                 envvar="NURI_CONFIG")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="state directory (default .nuri/)",
                                                  envvar="NURI_DATA_DIR")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(teams_app, name="teams")
    app.add_typer(audit_app, name="audit")
    app.command("usage")(usage)


def _run(config: Path | None, data_dir: Path | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Open the ledger the gateway would open, run fn(ledger), close."""
    from nuri.config import ConfigError, load_config
    from nuri.config import data_dir as resolve
    from nuri.errors import NuriError
    from nuri.ledger.service import Ledger

    try:
        loaded = load_config(config)
    except (ConfigError, OSError) as exc:
        err.print(f"[red]nuri: {exc}[/red]")
        raise typer.Exit(2) from exc
    state = resolve(data_dir)

    async def main() -> T:
        ledger = await Ledger.open(loaded.ledger, state, money=loaded.money)
        try:
            return await fn(ledger)
        finally:
            await ledger.close()

    try:
        return asyncio.run(main())
    except NuriError as exc:         # the admin API answers these as 4xx; here they end the command
        err.print(f"[red]nuri: {exc.message}[/red]")
        raise typer.Exit(1) from exc


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


# --- keys ---------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    team: Annotated[str, typer.Option("--team", help="team the key belongs to (created if new)")],
    budget: Annotated[float | None, typer.Option(help="team budget per period, catalog currency")] = None,
    rpm: Annotated[int | None, typer.Option(help="requests per minute for this key")] = None,
    tpm: Annotated[int | None, typer.Option(help="tokens per minute for this key")] = None,
    team_rpm: Annotated[int | None, typer.Option(help="requests per minute for the whole team")] = None,
    team_tpm: Annotated[int | None, typer.Option(help="tokens per minute for the whole team")] = None,
    models: Annotated[str | None, typer.Option(help="comma-separated models/aliases this key may use")] = None,
    name: Annotated[str | None, typer.Option(help="a label for the key")] = None,
    expires: Annotated[str | None, typer.Option(help="ISO 8601 time or a duration from now: 90d, 12h, 30m")] = None,
    user: Annotated[str | None, typer.Option("--user", help="the person the key is issued to (a per-user key)")] = None,
    workload: Annotated[str | None, typer.Option(
        "--workload", help="the workload its requests belong to when they name none")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a key and print it once; only its salted hash is stored."""
    new = _run(config, data_dir, lambda led: led.create_key(
        team, budget=budget, rpm=rpm, tpm=tpm, team_rpm=team_rpm, team_tpm=team_tpm, models=_csv(models), name=name,
        expires_at=expires, user_id=user, workload=workload))
    if as_json:
        print(json.dumps({"key": new.key, "team": new.team, "key_id": new.key_id}))
    else:
        print(new.key)
        err.print(f"key {new.key_id} for team {new.team}: store it now, it is not shown again")


@keys_app.command("list")
def keys_list(team: Annotated[str | None, typer.Option(help="only this team's keys")] = None,
              user: Annotated[str | None, typer.Option("--user", help="only this user's keys")] = None,
              as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Every key: id, team, user, status, limits, created and expiry times (never the key)."""
    infos = _run(config, data_dir, lambda led: led.list_keys(team, user))
    rows = [{"key_id": k.key_id, "team": k.team, "user_id": k.user_id, "status": k.status(),
             "created_at": k.created_at, "expires_at": k.expires_at, "revoked_at": k.revoked_at,
             "rpm": k.rpm, "tpm": k.tpm, "models": k.models, "name": k.name} for k in infos]
    if as_json:
        print(json.dumps(rows))
        return
    from rich.table import Table

    table = Table("key_id", "team", "user", "status", "rpm", "tpm", "models", "created", "expires")
    for r in rows:
        status = f"revoked {r['revoked_at']}" if r["revoked_at"] else r["status"]
        table.add_row(r["key_id"], r["team"], r["user_id"] or "-", status, str(r["rpm"] or "-"),
                      str(r["tpm"] or "-"), ",".join(r["models"] or []) or "any", r["created_at"],
                      r["expires_at"] or "never")
    Console().print(table)


def _key_id(value: str) -> str:
    """A key id, also from a whole key pasted by mistake."""
    if value.startswith("nuri-"):
        from nuri.ledger.keys import split_key

        parts = split_key(value)
        return parts[0] if parts else value
    return value


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id (see keys list)")],
                config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Revoke a key: every replica refuses it from the next request on."""
    key_id = _key_id(key_id)
    if not _run(config, data_dir, lambda led: led.revoke_key(key_id)):
        err.print(f"[red]no active key {key_id}[/red]")
        raise typer.Exit(1)
    print(f"revoked {key_id}")


@keys_app.command("rotate")
def keys_rotate(key_id: Annotated[str, typer.Argument(help="the key's id (see keys list)")],
                grace: Annotated[int, typer.Option(help="seconds the old key keeps working; 0: revoked now")] = 0,
                expires: Annotated[str | None, typer.Option(help="the new key's expiry; default: the old one's")] = None,
                as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Replace a key by a new one with the same team, user, limits and models; print it once."""
    key_id = _key_id(key_id)
    new = _run(config, data_dir, lambda led: led.rotate_key(key_id, grace_seconds=grace, expires_at=expires))
    if as_json:
        print(json.dumps({"key": new.key, "team": new.team, "key_id": new.key_id, "replaces": key_id}))
    else:
        print(new.key)
        err.print(f"key {new.key_id} replaces {key_id}: store it now, it is not shown again")


@keys_app.command("team")
def keys_team(
    team: Annotated[str, typer.Argument(help="team name")],
    budget: Annotated[float | None, typer.Option(help="budget per period")] = None,
    rpm: Annotated[int | None, typer.Option(help="team requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="team tokens per minute")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a team's budget and rate limits (created if new); `nuri teams set` does all settings."""
    _run(config, data_dir, lambda led: led.set_team(team, budget=budget, rpm=rpm, tpm=tpm))
    print(f"team {team} updated")


@keys_app.command("usage")
def keys_usage(team: Annotated[str | None, typer.Option(help="only this team")] = None, as_json: JsonOpt = False,
               config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Requests, tokens and cost per day, team and deployment (`nuri usage` groups any way)."""
    usage(by="day,team,deployment", team=team, key=None, deployment=None, since=None, until=None,
          fmt="json" if as_json else "table", config=config, data_dir=data_dir)


# --- teams --------------------------------------------------------------------------------


def _team_dict(t: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(t)


@teams_app.command("set")
def teams_set(
    team: Annotated[str, typer.Argument(help="team name (created if new)")],
    budget: Annotated[float | None, typer.Option(help="budget per period, in money.currency")] = None,
    rpm: Annotated[int | None, typer.Option(help="team requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="team tokens per minute")] = None,
    tags: Annotated[str | None, typer.Option(help="comma-separated policy tags (replace the current ones; '' clears)")] = None,
    roles: Annotated[str | None, typer.Option(help="comma-separated roles, e.g. admin ('' clears)")] = None,
    latency_tier: Annotated[str | None, typer.Option(help="interactive | standard | batch")] = None,
    clear: Annotated[str | None, typer.Option(help="comma-separated limits to remove: budget, rpm, tpm")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a team's settings; policy reads tags, roles and the tier from its next request on."""
    info = _run(config, data_dir, lambda led: led.set_team(
        team, budget=budget, rpm=rpm, tpm=tpm, tags=None if tags is None else (_csv(tags) or []),
        roles=None if roles is None else (_csv(roles) or []), latency_tier=latency_tier,
        clear=tuple(_csv(clear) or ())))
    print(json.dumps(_team_dict(info)) if as_json else f"team {team} updated")


@teams_app.command("list")
def teams_list(as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Every team with its budget, limits, tags, roles and latency tier."""
    infos = _run(config, data_dir, lambda led: led.list_teams())
    if as_json:
        print(json.dumps([_team_dict(t) for t in infos]))
        return
    from rich.table import Table

    table = Table("team", "budget", "rpm", "tpm", "tags", "roles", "tier")
    for t in infos:
        table.add_row(t.name, "-" if t.budget is None else f"{t.budget:g}", str(t.rpm or "-"), str(t.tpm or "-"),
                      ",".join(t.tags) or "-", ",".join(t.roles) or "-", t.latency_tier)
    Console().print(table)


@teams_app.command("show")
def teams_show(team: Annotated[str, typer.Argument(help="team name")], config: ConfigOpt = None,
               data_dir: DataDirOpt = None) -> None:
    """One team, as JSON."""
    print(json.dumps(_team_dict(_run(config, data_dir, lambda led: led.get_team(team)))))


# --- usage --------------------------------------------------------------------------------


def usage(
    by: Annotated[str, typer.Option(help="comma-separated: day, team, key, deployment")] = "day,team,deployment",
    team: Annotated[str | None, typer.Option(help="only this team")] = None,
    key: Annotated[str | None, typer.Option(help="only this key id")] = None,
    deployment: Annotated[str | None, typer.Option(help="only this deployment")] = None,
    since: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json | csv")] = "table",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Requests, tokens and spend per day, team, key and deployment (costs in money.currency)."""
    if fmt not in ("table", "json", "csv"):
        err.print(f"[red]unknown format {fmt!r}; use table, json or csv[/red]")
        raise typer.Exit(2)
    dims = tuple(_csv(by) or ())
    rows = _run(config, data_dir, lambda led: led.usage_report(by=dims, team=team, key_id=key, deployment=deployment,
                                                              since=since, until=until))
    if fmt == "json":
        print(json.dumps(rows))
        return
    if fmt == "csv":
        from nuri.ledger.audit.reports import usage_csv

        sys.stdout.write(usage_csv(rows))
        return
    from rich.table import Table

    columns = list(rows[0]) if rows else [*dims, "requests", "prompt_tokens", "completion_tokens", "cost"]
    table = Table(*columns)
    for r in rows:
        table.add_row(*(f"{r[c]:.6f}" if c == "cost" else str(r[c]) for c in columns))
    Console().print(table)


# --- audit --------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Check the whole chain and its signed checkpoints; exit 1 naming the first bad record."""
    result = _run(config, data_dir, lambda led: led.verify())
    if as_json:
        print(json.dumps({"ok": result.ok, "checked": result.checked, "head_seq": result.head_seq,
                          "first_bad_seq": result.first_bad_seq, "request_id": result.first_bad_request_id,
                          "reason": result.reason}))
    else:
        print(result.describe())
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl | csv")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default: stdout)")] = None,
    since: Annotated[str | None, typer.Option(help="only records at or after this ISO time")] = None,
    until: Annotated[str | None, typer.Option(help="only records before this ISO time")] = None,
    from_seq: Annotated[int | None, typer.Option(help="first sequence number")] = None,
    to_seq: Annotated[int | None, typer.Option(help="last sequence number")] = None,
    kind: Annotated[str | None, typer.Option(help="comma-separated kinds: request, admin, attempt")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Export the audit records for auditors (types, counts and keyed hashes; no personal values)."""
    from nuri.ledger.audit.export import FORMATS, Range, export

    if fmt not in FORMATS:
        err.print(f"[red]unknown format {fmt!r}; use jsonl or csv[/red]")
        raise typer.Exit(2)
    kinds = _csv(kind)
    span = Range(since=since, until=until, from_seq=from_seq, to_seq=to_seq, kinds=tuple(kinds) if kinds else None)

    async def work(led: Any) -> int:
        def write(conn: Any) -> int:
            if output is None:
                return export(conn, sys.stdout, fmt, span=span)
            with open(output, "w", encoding="utf-8", newline="") as fh:
                return export(conn, fh, fmt, span=span)

        await led.drain()   # spools of stopped gateways on this host, taken over at open, land first
        return await led.db.run_raw(write, snapshot=True)

    count = _run(config, data_dir, work)
    err.print(f"exported {count} records")


@audit_app.command("retention")
def audit_retention(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Show the retention setting (ledger.retention_days) and the oldest record kept."""
    from sqlalchemy import text

    async def work(led: Any) -> tuple[Any, ...]:
        return tuple(await led.db.run(lambda conn: conn.execute(
            text("SELECT MIN(time), MIN(seq), COUNT(*) FROM audit_log")).one()))

    oldest, first_seq, count = _run(config, data_dir, work)
    from nuri.config import load_config

    days = load_config(config).ledger.retention_days
    print(json.dumps({"retention_days": days, "records": count, "oldest_time": oldest, "first_seq": first_seq}))


@audit_app.command("prune")
def audit_prune(
    older_than_days: Annotated[int | None, typer.Option(help="default: ledger.retention_days")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Drop records older than the retention period, keeping a signed anchor so the rest verifies."""
    from nuri.config import load_config

    days = older_than_days or load_config(config).ledger.retention_days
    if not days:
        err.print("[red]give --older-than-days or set ledger.retention_days[/red]")
        raise typer.Exit(2)
    dropped = _run(config, data_dir, lambda led: led.prune(days))
    print(f"pruned {dropped} records older than {days} days")
