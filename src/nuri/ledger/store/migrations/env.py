"""Alembic environment: always handed an open connection by nuri.ledger.store.db.migrate."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached if someone runs `alembic` by hand
    raise RuntimeError("run ledger migrations through nuri (Ledger.open), which passes a connection")

context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
