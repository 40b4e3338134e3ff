"""Database URLs and SQLite settings shared by Nuri's stores (ledger, eval results, retrieval)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url


def with_psycopg(configured: str) -> str:
    """The URL with the psycopg 3 driver for PostgreSQL: a plain postgresql:// URL would ask
    SQLAlchemy for psycopg2, which Nuri does not install."""
    url = make_url(configured)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL (readers never wait for the writer), normal sync, and a busy timeout, on each connection."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
