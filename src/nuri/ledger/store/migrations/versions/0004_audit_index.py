"""Audit index: facets to filter the trail by, per-minute and per-day rollups, and how far they reach.

The operations console filters the audit trail by team, action, deployment and rule and pages
through it newest first; with a million records a scan of the JSON bodies is far too slow.
`audit_facet` holds one row per (facet, value, seq), so a filter is one range of its primary key
read backwards. `audit_rollup` counts request records per minute (requests, actions,
jurisdictions, outcomes, rules) and per day and key (requests and spend), so the overview and
the per-key spend read a few hundred rows whatever the length of the trail.

Nothing fills them on the write path: the indexer (ledger/audit/indexer.py) reads the records
after `audit_index_state.seq` in batches, off the request path, and moves that mark in the same
transaction as the rows it adds. The mark starts at 0, so its first catch-up indexes a trail
that existed before this revision. None of these tables is part of the chain: `nuri audit
verify` reads `audit_log` alone, and an edit to a record there is still found by the hashes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_facet",
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audit_rollup",
        sa.Column("bucket", sa.String(16), primary_key=True),     # minute YYYY-MM-DDTHH:MM or day YYYY-MM-DD
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("cost_nanos", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    state = op.create_table(
        "audit_index_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),          # every record with seq ≤ this is indexed
    )
    op.bulk_insert(state, [{"id": 1, "seq": 0}])


def downgrade() -> None:
    op.drop_table("audit_index_state")
    op.drop_table("audit_rollup")
    op.drop_table("audit_facet")
