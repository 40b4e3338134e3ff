"""Results in the ledger's database, in Nuri's own `eval_` tables.

The tables have their own MetaData and are made with create_all, apart from the ledger's
Alembic-managed tables. A run row records suites with their dataset versions, models and the
settings used; item rows hold the suite's own prompt and the reply (the suites' text only, never
a user's data), the score and the measurements.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.expression import Executable

from nuri.dburl import sqlite_pragmas, with_psycopg

metadata = MetaData()

runs = Table(
    "eval_runs", metadata,
    Column("id", String(32), primary_key=True),
    Column("fingerprint", String(64), index=True, nullable=False),
    Column("status", String(16), nullable=False),
    Column("suites", JSON, nullable=False),
    Column("models", JSON, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

items = Table(
    "eval_items", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("eval_runs.id"), nullable=False, index=True),
    Column("suite", String(128), nullable=False),
    Column("suite_version", String(32), nullable=False),
    Column("item_id", String(128), nullable=False),
    Column("item_hash", String(32), nullable=False),
    Column("model", String(128), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("reply", Text),
    Column("score", Float),
    Column("passed", Boolean),
    Column("latency_ms", Float),
    Column("ttft_ms", Float),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("cost", Float),
    Column("error", Text),
    Column("details", JSON),
    Column("attempts", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "suite", "item_id", "model", name="uq_eval_items_unit"),
)


_UNIT = ("run_id", "suite", "item_id", "model")


def _upsert(dialect: str, columns: Iterable[str]) -> Executable | None:
    """One INSERT … ON CONFLICT DO UPDATE on the unit, where the dialect has it; else None."""
    stmt: SqliteInsert | PgInsert
    if dialect == "sqlite":
        stmt = sqlite_insert(items)
    elif dialect == "postgresql":
        stmt = pg_insert(items)
    else:
        return None
    update_cols = {c: stmt.excluded[c] for c in columns if c not in _UNIT}
    return stmt.on_conflict_do_update(index_elements=list(_UNIT), set_=update_cols)


@dataclass
class ItemResult:
    run_id: str
    suite: str
    suite_version: str
    item_id: str
    item_hash: str
    model: str
    prompt: str
    reply: str | None = None
    score: float | None = None
    passed: bool | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1


def database_url(configured: str | None, data_directory: Path) -> str:
    """The ledger's database (results sit beside the audit log), with the psycopg 3 driver for
    PostgreSQL as the ledger uses: a plain postgresql:// URL would ask for psycopg2."""
    if not configured:
        return f"sqlite:///{data_directory / 'nuri.db'}"
    return with_psycopg(configured)



class ResultStore:
    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", sqlite_pragmas)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- runs --------------------------------------------------------------------------------
    def create_run(self, fingerprint: str, suites: list[dict[str, Any]], models: list[str],
                   settings: dict[str, Any]) -> str:
        run_id = uuid.uuid4().hex[:12]
        with self.engine.begin() as conn:
            conn.execute(insert(runs).values(
                id=run_id, fingerprint=fingerprint, status="running", suites=suites, models=models,
                settings=settings, started_at=datetime.now(UTC)))
        return run_id

    def set_status(self, run_id: str, status: str) -> None:
        values: dict[str, Any] = {"status": status}
        values["finished_at"] = datetime.now(UTC) if status == "finished" else None
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:  # accept a unique prefix, as git does
                rows = conn.execute(select(runs).where(runs.c.id.startswith(run_id))).mappings().all()
                row = rows[0] if len(rows) == 1 else None
        return dict(row) if row else None

    def list_runs(self, status: str | None = None) -> list[dict[str, Any]]:
        q = select(runs).order_by(runs.c.started_at.desc())
        if status:
            q = q.where(runs.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def unfinished_run(self, fingerprint: str) -> str | None:
        q = (select(runs.c.id).where(and_(runs.c.fingerprint == fingerprint, runs.c.status != "finished"))
             .order_by(runs.c.started_at.desc()))
        with self.engine.connect() as conn:
            return conn.execute(q).scalars().first()

    # -- items -------------------------------------------------------------------------------
    def finished_units(self, run_id: str) -> set[tuple[str, str, str]]:
        """(suite, item_id, model) already scored without error: a resumed run skips them."""
        q = select(items.c.suite, items.c.item_id, items.c.model).where(
            and_(items.c.run_id == run_id, items.c.error.is_(None)))
        with self.engine.connect() as conn:
            return {tuple(r) for r in conn.execute(q)}

    def save_items(self, results: Iterable[ItemResult]) -> None:
        rows = [asdict(r) | {"created_at": datetime.now(UTC)} for r in results]
        if not rows:
            return
        dialect = self.engine.dialect.name
        with self.engine.begin() as conn:
            upsert = _upsert(dialect, rows[0])
            if upsert is not None:  # one statement; a redone item replaces its failed row
                conn.execute(upsert, rows)
                return
            for r in rows:
                conn.execute(delete(items).where(and_(
                    items.c.run_id == r["run_id"], items.c.suite == r["suite"],
                    items.c.item_id == r["item_id"], items.c.model == r["model"])))
            conn.execute(insert(items), rows)

    def update_scores(self, updates: list[dict[str, Any]]) -> None:
        """New score, passed, details (and cleared error) for existing item rows, by row id."""
        with self.engine.begin() as conn:
            for u in updates:
                conn.execute(update(items).where(items.c.id == u["id"]).values(
                    score=u["score"], passed=u["passed"], details=u["details"], error=u.get("error")))

    def set_settings(self, run_id: str, settings: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(settings=settings))

    def run_items(self, run_ids: list[str]) -> list[dict[str, Any]]:
        q = select(items).where(items.c.run_id.in_(run_ids)).order_by(items.c.suite, items.c.item_id, items.c.model)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def latest_items(self) -> list[dict[str, Any]]:
        """For each (suite, version, model): the items of the most recent run that scored it."""
        chosen: dict[tuple[str, str, str], str] = {}
        for run in sorted(self.list_runs(), key=lambda r: r["started_at"]):
            for s in run["suites"]:
                for m in run["models"]:
                    chosen[(s["name"], s["version"], m)] = run["id"]
        wanted = set(chosen.items())
        rows = self.run_items(sorted(set(chosen.values())))
        return [r for r in rows if ((r["suite"], r["suite_version"], r["model"]), r["run_id"]) in wanted]
