"""Key expiry and per-user keys: `api_keys.expires_at` and `api_keys.user_id`.

A key past its `expires_at` is refused (401 `key_expired`) like a revoked one, and `user_id` names
the person a team's key was issued to, so one person's key can be revoked or rotated alone. Both
are nullable: keys made before this revision never expire and belong to the team as a whole.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN: a batch rebuild of the table on SQLite would drop 0002's triggers
    op.add_column("api_keys", sa.Column("expires_at", sa.String(40), nullable=True))
    op.add_column("api_keys", sa.Column("user_id", sa.String(128), nullable=True))
    op.create_index("ix_api_keys_user", "api_keys", ["team", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_user", table_name="api_keys")
    op.drop_column("api_keys", "user_id")
    op.drop_column("api_keys", "expires_at")
