"""`nuri keys` and `nuri audit` on SQLite (--data-dir) and PostgreSQL (--config)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from nuri.ledger.cli import register

from .conftest import PG_URL, Backend


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def args_for(store: Backend, tmp_path: Path) -> list[str]:
    if store.name == "sqlite":
        return ["--data-dir", str(tmp_path)]
    cfg = tmp_path / "nuri.yaml"
    cfg.write_text(yaml.safe_dump({"ledger": {"database_url": PG_URL, "db_schema": store.settings.db_schema}}))
    return ["--config", str(cfg), "--data-dir", str(tmp_path)]


def test_keys_and_audit_commands(cli: typer.Typer, store: Backend, tmp_path: Path) -> None:
    run = CliRunner().invoke
    where = args_for(store, tmp_path)
    out = run(cli, ["keys", "create", "--team", "ops", "--budget", "3", "--rpm", "5", "--tpm", "500",
                    "--models", "default,global-mini", "--json", *where])
    assert out.exit_code == 0, out.output
    created = json.loads(out.stdout)
    assert created["team"] == "ops" and created["key"].startswith("nuri-")
    plain = run(cli, ["keys", "create", "--team", "dev", *where])
    assert plain.exit_code == 0 and plain.stdout.strip().startswith("nuri-")

    listed = json.loads(run(cli, ["keys", "list", "--json", *where]).stdout)
    assert {k["team"] for k in listed} == {"ops", "dev"}
    assert created["key"] not in json.dumps(listed)
    ops = next(k for k in listed if k["team"] == "ops")
    assert ops["rpm"] == 5 and ops["models"] == ["default", "global-mini"]

    assert run(cli, ["keys", "revoke", ops["key_id"], *where]).exit_code == 0
    assert run(cli, ["keys", "revoke", ops["key_id"], *where]).exit_code == 1
    assert run(cli, ["keys", "team", "dev", "--budget", "9", "--rpm", "100", *where]).exit_code == 0

    ok = run(cli, ["audit", "verify", *where])
    assert ok.exit_code == 0 and "OK" in ok.stdout

    jsonl = tmp_path / "audit.jsonl"
    assert run(cli, ["audit", "export", "--format", "jsonl", "-o", str(jsonl), *where]).exit_code == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["endpoint"] for r in lines] == ["key_created", "key_created", "key_revoked", "team_updated"]
    assert [r["seq"] for r in lines] == [1, 2, 3, 4] and all(len(r["hash"]) == 64 for r in lines)

    out_csv = run(cli, ["audit", "export", "--format", "csv", *where])
    rows = list(csv.DictReader(io.StringIO(out_csv.stdout)))
    assert len(rows) == 4 and rows[2]["endpoint"] == "key_revoked" and rows[0]["kind"] == "admin"
    assert run(cli, ["audit", "export", "--format", "xml", *where]).exit_code == 2

    retention = json.loads(run(cli, ["audit", "retention", *where]).stdout)
    assert retention["records"] == 4

    # tamper, then verify must fail naming the record
    if store.name == "sqlite":
        conn = sqlite3.connect(tmp_path / "nuri.db")
        conn.execute("UPDATE audit_log SET body = replace(body, 'key_revoked', 'key_restored') WHERE seq = 3")
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True, options=f"-c search_path={store.settings.db_schema}") as c:
            c.execute("DELETE FROM audit_log WHERE seq = 3")
    broken = run(cli, ["audit", "verify", "--json", *where])
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["first_bad_seq"] == 3
    text_out = run(cli, ["audit", "verify", *where])
    assert text_out.exit_code == 1 and "seq 3" in text_out.stdout


def test_prune_needs_a_period(cli: typer.Typer, tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["audit", "prune", "--data-dir", str(tmp_path)])
    assert out.exit_code == 2
    out = CliRunner().invoke(cli, ["audit", "prune", "--older-than-days", "30", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0 and "pruned 0" in out.stdout
