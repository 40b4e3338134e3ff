"""Initial ledger schema: teams, keys, audit chain, usage, counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("budget", sa.Float, nullable=True),
        sa.Column("rpm", sa.BigInteger, nullable=True),
        sa.Column("tpm", sa.BigInteger, nullable=True),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("roles", sa.Text, nullable=False, server_default="[]"),
        sa.Column("latency_tier", sa.String(32), nullable=False, server_default="standard"),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("team", sa.String(128), sa.ForeignKey("teams.name"), nullable=False, index=True),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("revoked_at", sa.String(40), nullable=True),
        sa.Column("rpm", sa.BigInteger, nullable=True),
        sa.Column("tpm", sa.BigInteger, nullable=True),
        sa.Column("models", sa.Text, nullable=True),
        sa.Column("name", sa.String(128), nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", sa.String(40), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("sig", sa.String(64), nullable=True),
        sa.Column("checkpoint_seq", sa.BigInteger, nullable=False),
        sa.Column("checkpoint_time", sa.Float, nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS, "sig": None, "checkpoint_seq": 0,
                           "checkpoint_time": 0.0}])
    op.create_table(
        "audit_checkpoint",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("sig", sa.String(64), nullable=False),
    )
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("team", sa.String(128), primary_key=True),
        sa.Column("deployment", sa.String(256), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_nanos", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rate_window",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("second", sa.BigInteger, primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "budget_spend",
        sa.Column("team", sa.String(128), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("spent_nanos", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for name in ("budget_spend", "rate_window", "usage_daily", "audit_checkpoint",
                 "audit_head", "audit_log", "api_keys", "teams"):
        op.drop_table(name)
