"""`nuri keys …` and `nuri audit …`: manage keys and teams, verify and export the audit chain.

Every command honours --data-dir / NURI_DATA_DIR and --config (for ledger.database_url), so it
works on the same store as the gateway, SQLite or PostgreSQL.
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

keys_app = typer.Typer(help="API keys and teams: create, list, revoke, limits, usage.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit chain: verify, export, retention.", no_args_is_help=True)
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="nuri.yaml (ledger.database_url)",
                                                 envvar="NURI_CONFIG")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="state directory (default .nuri/)",
                                                  envvar="NURI_DATA_DIR")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")


def _run(config: Path | None, data_dir: Path | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Open the ledger the gateway would open, run fn(ledger), close."""
    from nuri.config import ConfigError, load_config
    from nuri.config import data_dir as resolve
    from nuri.ledger.service import Ledger

    try:
        settings = load_config(config).ledger
    except (ConfigError, OSError) as exc:
        err.print(f"[red]nuri: {exc}[/red]")
        raise typer.Exit(2) from exc
    state = resolve(data_dir)

    async def main() -> T:
        ledger = await Ledger.open(settings, state)
        try:
            return await fn(ledger)
        finally:
            await ledger.close()

    return asyncio.run(main())


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
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a key and print it once; only its salted hash is stored."""
    new = _run(config, data_dir, lambda led: led.create_key(
        team, budget=budget, rpm=rpm, tpm=tpm, team_rpm=team_rpm, team_tpm=team_tpm, models=_csv(models), name=name))
    if as_json:
        print(json.dumps({"key": new.key, "team": new.team, "key_id": new.key_id}))
    else:
        print(new.key)
        err.print(f"key {new.key_id} for team {new.team}: store it now, it is not shown again")


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Every key: id, team, limits, created and revoked times (never the key)."""
    infos = _run(config, data_dir, lambda led: led.list_keys())
    rows = [{"key_id": k.key_id, "team": k.team, "created_at": k.created_at, "revoked_at": k.revoked_at,
             "rpm": k.rpm, "tpm": k.tpm, "models": k.models, "name": k.name} for k in infos]
    if as_json:
        print(json.dumps(rows))
        return
    from rich.table import Table

    table = Table("key_id", "team", "status", "rpm", "tpm", "models", "created")
    for r in rows:
        status = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
        table.add_row(r["key_id"], r["team"], status, str(r["rpm"] or "-"), str(r["tpm"] or "-"),
                      ",".join(r["models"] or []) or "any", r["created_at"])
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id (see keys list)")],
                config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Revoke a key: every replica refuses it from the next request on."""
    if key_id.startswith("nuri-"):
        from nuri.ledger.keys import split_key

        parts = split_key(key_id)
        key_id = parts[0] if parts else key_id
    if not _run(config, data_dir, lambda led: led.revoke_key(key_id)):
        err.print(f"[red]no active key {key_id}[/red]")
        raise typer.Exit(1)
    print(f"revoked {key_id}")


@keys_app.command("team")
def keys_team(
    team: Annotated[str, typer.Argument(help="team name")],
    budget: Annotated[float | None, typer.Option(help="budget per period")] = None,
    rpm: Annotated[int | None, typer.Option(help="team requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="team tokens per minute")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a team's budget and rate limits (created if new)."""
    _run(config, data_dir, lambda led: led.set_team(team, budget=budget, rpm=rpm, tpm=tpm))
    print(f"team {team} updated")


@keys_app.command("usage")
def keys_usage(team: Annotated[str | None, typer.Option(help="only this team")] = None, as_json: JsonOpt = False,
               config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Requests, tokens and cost per day, team and deployment."""
    rows = _run(config, data_dir, lambda led: led.usage(team))
    if as_json:
        print(json.dumps(rows))
        return
    from rich.table import Table

    table = Table("day", "team", "deployment", "requests", "prompt", "completion", "cost")
    for r in rows:
        table.add_row(r["day"], r["team"], r["deployment"], str(r["requests"]), str(r["prompt_tokens"]),
                      str(r["completion_tokens"]), f"{r['cost']:.6f}")
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
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Export the audit records for auditors (types, counts and keyed hashes; no personal values)."""
    if fmt not in ("jsonl", "csv"):
        err.print(f"[red]unknown format {fmt!r}; use jsonl or csv[/red]")
        raise typer.Exit(2)
    from nuri.ledger.export import export

    async def work(led: Any) -> int:
        def write(conn: Any) -> int:
            if output is None:
                return export(conn, sys.stdout, fmt, since)
            with open(output, "w", encoding="utf-8", newline="") as fh:
                return export(conn, fh, fmt, since)

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
