"""The database: one engine over SQLite (WAL) or PostgreSQL, migrations, and a thread to call it in.

SQLAlchemy's sync engine with psycopg 3 / sqlite3 is run in worker threads so no blocking call
ever runs on the event loop. SQLite transactions that write begin with BEGIN IMMEDIATE, which
takes the file's write lock up front: that is what serialises writers across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from nuri.config import LedgerSettings

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MIGRATION_LOCK = 0x4E555249  # "NURI": pg advisory lock id held while migrating


def database_url(settings: LedgerSettings, data_dir: Path) -> str:
    """The SQLAlchemy URL: the configured one (psycopg 3 driver for PostgreSQL) or the SQLite file."""
    if not settings.database_url:
        return f"sqlite:///{(data_dir / 'nuri.db').resolve()}"
    url = make_url(settings.database_url)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


class Database:
    """Engine + executor. `run(fn)` calls fn(connection) in a thread inside a transaction."""

    def __init__(self, settings: LedgerSettings, data_dir: Path, *, workers: int = 4) -> None:
        self.url = database_url(settings, data_dir)
        self.is_sqlite = self.url.startswith("sqlite")
        self.schema = settings.db_schema
        if self.schema and not _SCHEMA_NAME.match(self.schema):
            raise ValueError(f"ledger.db_schema {self.schema!r} is not a plain identifier")
        self.data_dir = data_dir
        self.engine = self._make_engine(settings)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nuri-ledger-db")

    def _make_engine(self, settings: LedgerSettings) -> Engine:
        if self.is_sqlite:
            sync = "FULL" if settings.durability == "fsync" else "NORMAL"
            engine = create_engine(
                self.url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8,
                max_overflow=8,
            )

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
                conn.exec_driver_sql(f"BEGIN {mode}")

            return engine
        connect_args: dict[str, Any] = {}
        if self.schema:
            connect_args["options"] = f"-c search_path={self.schema}"
        return create_engine(
            self.url, connect_args=connect_args, pool_size=8, max_overflow=8, pool_pre_ping=False,
        )

    # --- calling the database -------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Connection]:
        """A transaction; `write` takes SQLite's write lock at BEGIN so checks and writes are atomic."""
        conn = self.engine.connect()
        if write and self.is_sqlite:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        try:
            with conn.begin():
                yield conn
        finally:
            conn.close()

    def call(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        with self.transaction(write=write) as conn:
            return fn(conn)

    async def run(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self.call(fn, write=write))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()

    # --- schema ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the latest revision; safe when several replicas start at once."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        if self.is_sqlite:
            lock_path = self.data_dir / "nuri.db.migrate.lock"
            with open(lock_path, "w") as lock, self.engine.connect() as conn:
                fcntl.flock(lock, fcntl.LOCK_EX)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            return
        with self.engine.connect() as conn:
            if self.schema:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                conn.commit()
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
