"""The database: one engine over SQLite (WAL) or PostgreSQL, migrations, and a thread to call it in.

SQLAlchemy's sync engine with psycopg 3 / sqlite3 is run in worker threads so no blocking call
ever runs on the event loop. SQLite transactions that write begin with BEGIN IMMEDIATE, which
takes the file's write lock up front: that is what serialises writers across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from nuri.config import LedgerSettings
from nuri.dburl import with_psycopg

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Pages of a new SQLite file. Stored responses and audit records are rows of a few KB written in
# batches, and every page of a commit is one write to the WAL and one more at the checkpoint: with
# 16 KB pages a batch of 144 rows of 2.3 KB cost 6.7 µs of CPU a row against 18.3 with 4 KB (one
# commit of one row costs about the same). An existing file keeps the size it was made with.
SQLITE_PAGE_SIZE = 16384
_WAL_CHECKPOINT_BYTES = 4 << 20    # SQLite's default (1,000 pages of 4 KB), kept whatever the page size
_MIGRATION_LOCK = 0x4E555249  # "NURI": pg advisory lock id held while migrating


def database_url(settings: LedgerSettings, data_dir: Path) -> str:
    """The SQLAlchemy URL: the configured one (psycopg 3 driver for PostgreSQL) or the SQLite file."""
    if not settings.database_url:
        return f"sqlite:///{(data_dir / 'nuri.db').resolve()}"
    return with_psycopg(settings.database_url)


def _enable_wal(cur: sqlite3.Cursor) -> None:
    """Switch the file to WAL. SQLite answers "database is locked" at once, without waiting for
    the busy timeout, when several processes open a new file and race to switch it together;
    the switch is persistent, so retrying until one of them has done it is enough."""
    cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")      # takes effect on a new, empty file only
    deadline = time.monotonic() + 30
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def checkpoint_by_size(conn: Any) -> None:
    """Checkpoint the WAL every ~4 MB: SQLite counts the interval in pages (1,000), which would let
    the WAL of a file of 16 KB pages grow to 16 MB. `conn`: a sqlite3 connection or cursor."""
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint={max(1, _WAL_CHECKPOINT_BYTES // page)}")


def private_sqlite_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600) before SQLite opens it, and narrow
    an existing one. SQLite creates `-wal` and `-shm` with the mode of the database file, so they
    follow; the file holds key hashes, teams and the audit chain, which other local users must
    not read."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    for suffix in ("", "-wal", "-shm"):
        sibling = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            if sibling.stat().st_mode & 0o077:
                sibling.chmod(0o600)


class Database:
    """Engine + executor. `run(fn)` calls fn(connection) in a thread inside a transaction."""

    def __init__(self, settings: LedgerSettings, data_dir: Path, *, workers: int = 4) -> None:
        self.url = database_url(settings, data_dir)
        self.is_sqlite = self.url.startswith("sqlite")
        self.schema = settings.db_schema
        if self.schema and not _SCHEMA_NAME.match(self.schema):
            raise ValueError(f"ledger.db_schema {self.schema!r} is not a plain identifier")
        self.data_dir = data_dir
        if self.is_sqlite:
            data_dir.mkdir(parents=True, exist_ok=True)
            private_sqlite_file(Path(make_url(self.url).database or data_dir / "nuri.db"))
        self.engine = self._make_engine(settings)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nuri-ledger-db")
        self._local = threading.local()
        self._raw_lock = threading.Lock()
        self._raw_conns: list[RawConn] = []
        self.sqlite_sync = "FULL" if settings.durability == "fsync" else "NORMAL"  # also PG's choice
        self._aidle: list[AsyncRawConn] = []
        self._alimit = asyncio.Semaphore(workers * 2)

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
                _enable_wal(cur)
                checkpoint_by_size(cur)
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

    # --- the hot path: plain DBAPI connections, one per thread ---------------------------------

    def raw(self) -> RawConn:
        """This thread's own DBAPI connection (autocommit; `transaction()` for atomic work).

        Per-request queries skip SQLAlchemy's pool and statement layers, which cost ~50× the
        query itself for a primary-key lookup on SQLite.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = RawConn.connect(self)
            self._local.conn = conn
            with self._raw_lock:
                self._raw_conns.append(conn)
        return conn

    def call_raw(self, fn: Callable[[RawConn], T], *, write: bool = False, tx: bool = True,
                 snapshot: bool = False) -> T:
        conn = self.raw()
        try:
            if not tx:
                return fn(conn)
            with conn.transaction(write=write, snapshot=snapshot):
                return fn(conn)
        except Exception:
            if conn.broken:      # the server went away: reconnect on this thread's next call
                self._local.conn = None
                with self._raw_lock:
                    if conn in self._raw_conns:
                        self._raw_conns.remove(conn)
                with contextlib.suppress(Exception):
                    conn.close()
            raise

    async def run_raw(self, fn: Callable[[RawConn], T], *, write: bool = False, tx: bool = True,
                      snapshot: bool = False) -> T:
        """fn(conn) in a worker thread: in a transaction (`write` takes SQLite's write lock up
        front; `snapshot` reads one consistent state on PostgreSQL), or `tx=False` in autocommit."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, lambda: self.call_raw(fn, write=write, tx=tx, snapshot=snapshot))

    # --- PostgreSQL on the event loop: no threads, so no GIL hand-offs under load ---------------

    @contextlib.asynccontextmanager
    async def aconn(self) -> AsyncIterator[AsyncRawConn]:
        """A pooled async PostgreSQL connection (autocommit) for one short piece of work."""
        async with self._alimit:
            conn = self._aidle.pop() if self._aidle else await AsyncRawConn.connect(self)
            try:
                yield conn
            except BaseException:
                if conn.broken:
                    await conn.close()
                else:
                    await conn.rollback()
                    self._aidle.append(conn)
                raise
            self._aidle.append(conn)

    async def aclose(self) -> None:
        while self._aidle:
            with contextlib.suppress(Exception):
                await self._aidle.pop().close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._raw_lock:
            for conn in self._raw_conns:
                with contextlib.suppress(Exception):
                    conn.close()
            self._raw_conns.clear()
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
            with os.fdopen(os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600), "w") as lock, \
                    self.engine.connect() as conn:
                fcntl.flock(lock, fcntl.LOCK_EX)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            conn.commit()
            try:
                if self.schema:   # under the lock: two replicas creating it at once would collide
                    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    conn.commit()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


class RawConn:
    """A DBAPI connection taking `:name` parameters on SQLite and PostgreSQL alike."""

    def __init__(self, conn: Any, is_sqlite: bool, durable: bool = True) -> None:
        self.conn = conn
        self.is_sqlite = is_sqlite
        self.durable = durable      # False: commits survive a gateway crash, not a database host crash
        self._sql: dict[str, str] = {}

    @classmethod
    def connect(cls, db: Database) -> RawConn:
        url = make_url(db.url)
        if db.is_sqlite:
            conn = sqlite3.connect(url.database or "", isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            checkpoint_by_size(conn)
            conn.execute(f"PRAGMA synchronous={db.sqlite_sync}")
            conn.execute("PRAGMA busy_timeout=30000")
            return cls(conn, True)
        import psycopg

        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        options = f"-c search_path={db.schema}" if db.schema else None
        pg = psycopg.connect(dsn, autocommit=True, options=options) if options else psycopg.connect(
            dsn, autocommit=True)
        return cls(pg, False, durable=db.sqlite_sync == "FULL")

    def _q(self, sql: str) -> str:
        if self.is_sqlite:
            return sql
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = _NAMED.sub(r"%(\1)s", sql)
        return out

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(self._q(sql), params or {})
        return list(cur.fetchall()) if cur.description else []

    def one(self, sql: str, params: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        cur = self.conn.execute(self._q(sql), params or {})
        return cur.fetchone()

    def run(self, sql: str, params: dict[str, Any] | None = None) -> int:
        return int(self.conn.execute(self._q(sql), params or {}).rowcount or 0)

    def many(self, sql: str, seq: list[dict[str, Any]]) -> None:
        if seq:
            cur = self.conn.cursor()
            cur.executemany(self._q(sql), seq)
            cur.close()

    @contextlib.contextmanager
    def transaction(self, *, write: bool = False, snapshot: bool = False) -> Iterator[RawConn]:
        if self.is_sqlite:
            self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        else:
            self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if snapshot else "BEGIN")
        try:
            yield self
        except BaseException:
            with contextlib.suppress(Exception):
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def begin_locked(self, sql: str) -> tuple[Any, ...] | None:
        """Open a write transaction and read one row under lock, in one round trip.

        SQLite: BEGIN IMMEDIATE (the file's write lock), then the query. PostgreSQL: BEGIN and
        `sql FOR UPDATE` sent together as one simple query (no parameters allowed in `sql`).
        """
        try:
            if self.is_sqlite:
                self.conn.execute("BEGIN IMMEDIATE")
                return self.conn.execute(sql).fetchone()
            relaxed = "SET LOCAL synchronous_commit = off; " if not self.durable else ""
            cur = self.conn.execute(f"BEGIN; {relaxed}{sql} FOR UPDATE")
            while cur.description is None and cur.nextset():
                pass
            return cur.fetchone()
        except BaseException:
            self.rollback()
            raise

    def commit_batch(self, ops: list[tuple[str, list[dict[str, Any]]]]) -> None:
        """Run the writes and COMMIT; on PostgreSQL all in one pipelined round trip."""
        try:
            if self.is_sqlite:
                for sql, seq in ops:
                    self.many(sql, seq)
                self.conn.execute("COMMIT")
                return
            with self.conn.pipeline():
                cur = self.conn.cursor()
                for sql, seq in ops:
                    if seq:
                        cur.executemany(self._q(sql), seq)
                self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.execute("ROLLBACK")

    @property
    def broken(self) -> bool:
        return not self.is_sqlite and bool(self.conn.closed or self.conn.broken)

    def close(self) -> None:
        self.conn.close()


class AsyncRawConn:
    """The async twin of RawConn, PostgreSQL only (psycopg 3 AsyncConnection)."""

    is_sqlite = False

    def __init__(self, conn: Any, durable: bool) -> None:
        self.conn = conn
        self.durable = durable
        self._sql: dict[str, str] = {}

    @classmethod
    async def connect(cls, db: Database) -> AsyncRawConn:
        import psycopg

        url = make_url(db.url)
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        durable = db.sqlite_sync == "FULL"
        options = [f"-c search_path={db.schema}"] if db.schema else []
        if not durable:   # audit batches are their only writes; a one-statement batch has no SET LOCAL
            options.append("-c synchronous_commit=off")
        kwargs: dict[str, Any] = {"autocommit": True}
        if options:
            kwargs["options"] = " ".join(options)
        return cls(await psycopg.AsyncConnection.connect(dsn, **kwargs), durable=durable)

    def _q(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = _NAMED.sub(r"%(\1)s", sql)
        return out

    async def one(self, sql: str, params: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        cur = await self.conn.execute(self._q(sql), params or {})
        return await cur.fetchone()

    async def begin_locked(self, sql: str) -> tuple[Any, ...] | None:
        try:
            relaxed = "SET LOCAL synchronous_commit = off; " if not self.durable else ""
            cur = await self.conn.execute(f"BEGIN; {relaxed}{sql} FOR UPDATE")
            while cur.description is None and cur.nextset():
                pass
            return await cur.fetchone()
        except BaseException:
            await self.rollback()
            raise

    async def commit_batch(self, ops: list[tuple[str, list[dict[str, Any]]]]) -> None:
        try:
            async with self.conn.pipeline():
                cur = self.conn.cursor()
                for sql, seq in ops:
                    if seq:
                        await cur.executemany(self._q(sql), seq)
                await self.conn.execute("COMMIT")
        except BaseException:
            await self.rollback()
            raise

    async def rollback(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.execute("ROLLBACK")

    @property
    def broken(self) -> bool:
        return bool(self.conn.closed or self.conn.broken)

    async def close(self) -> None:
        await self.conn.close()
