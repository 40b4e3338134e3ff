"""Key epoch: one counter that every change to teams or API keys bumps.

Replicas cache key rows and trust them only while the epoch they last read is current, so a
revocation reaches every replica without each request reading its key. Triggers bump the epoch,
so a change made by hand in SQL invalidates the caches as surely as `nuri keys revoke` does.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("teams", "api_keys")


def upgrade() -> None:
    epoch = op.create_table(
        "key_epoch",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(epoch, [{"id": 1, "epoch": 0}])
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_{event.lower()}_bumps_key_epoch AFTER {event} ON {table} "
                    "BEGIN UPDATE key_epoch SET epoch = epoch + 1 WHERE id = 1; END"
                )
        return
    op.execute(
        "CREATE FUNCTION nuri_bump_key_epoch() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN UPDATE key_epoch SET epoch = epoch + 1 WHERE id = 1; RETURN NULL; END $$"
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_bumps_key_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION nuri_bump_key_epoch()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_bumps_key_epoch")
    else:
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_bumps_key_epoch ON {table}")
        op.execute("DROP FUNCTION IF EXISTS nuri_bump_key_epoch()")
    op.drop_table("key_epoch")
