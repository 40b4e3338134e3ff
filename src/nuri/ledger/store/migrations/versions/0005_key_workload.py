"""A key's default workload: `api_keys.workload`.

A request that names no workload (no `model: workload:<name>`, no `x-nuri-workload` header)
belongs to its key's default workload, so a team's helpdesk key is routed by the helpdesk plan
without its clients knowing plans exist. Nullable: keys made before this revision have none.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN: a batch rebuild of the table on SQLite would drop 0002's triggers
    op.add_column("api_keys", sa.Column("workload", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("api_keys", "workload")
