"""Audit index: facets to filter the trail by and per-minute and per-day rollups.

The operations console filters the audit trail by team, action, deployment and rule and pages
through it newest first; with a million records a scan of the JSON bodies is far too slow.
`audit_facet` holds one row per (facet, value, seq), so a filter is one range of its primary key
read backwards. `audit_rollup` counts request records per minute (requests, actions,
jurisdictions, outcomes, rules) and per day and key (requests and spend), so the overview and
the per-key spend read a few hundred rows whatever the length of the trail.

Triggers fill both from every row inserted into `audit_log`, so the writer is unchanged and a
record written by any replica (or by hand in SQL) is indexed in the same transaction. Neither
table is part of the chain: `nuri audit verify` reads `audit_log` alone, and an edit to a record
there is still found by the hashes. Pruning leaves rows here for the records it drops; readers
join on `audit_log` (facets) or keep them as history (rollups).

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

# --- SQLite: json_extract / json_each over the body text -----------------------------------------

_SQLITE_COST = "CAST(round(coalesce(json_extract({r}.body, '$.cost'), 0) * 1000000000) AS INTEGER)"
_SQLITE_KEY = "coalesce(json_extract({r}.body, '$.key_id'), '-')"

# one parse of the body per json_each: each json_extract call would parse it again
SQLITE_TRIGGER = """
CREATE TRIGGER audit_log_index AFTER INSERT ON audit_log BEGIN
  INSERT OR IGNORE INTO audit_facet (name, value, seq)
    SELECT 'team', NEW.team, NEW.seq
    UNION ALL SELECT key, value, NEW.seq FROM json_each(NEW.body)
      WHERE key IN ('action', 'deployment') AND value IS NOT NULL
    UNION ALL SELECT 'rule', value, NEW.seq FROM json_each(NEW.body, '$.rule_ids');
  INSERT INTO audit_rollup (bucket, name, value, n, cost_nanos)
    SELECT DISTINCT substr(NEW.time, 1, 16), name, value, 1, 0 FROM (
      SELECT 'requests' AS name, '' AS value
      UNION ALL SELECT key, coalesce(value, '-') FROM json_each(NEW.body)
        WHERE key IN ('action', 'jurisdiction', 'outcome') AND (value IS NOT NULL OR key = 'jurisdiction')
      UNION ALL SELECT 'rule', value FROM json_each(NEW.body, '$.rule_ids'))
    WHERE NEW.kind = 'request'
    ON CONFLICT (bucket, name, value) DO UPDATE SET n = n + 1;
  INSERT INTO audit_rollup (bucket, name, value, n, cost_nanos)
    SELECT substr(NEW.time, 1, 10), 'key', coalesce(max(CASE WHEN key = 'key_id' THEN value END), '-'), 1,
           CAST(round(coalesce(max(CASE WHEN key = 'cost' THEN value END), 0) * 1000000000) AS INTEGER)
    FROM json_each(NEW.body) WHERE NEW.kind = 'request' AND key IN ('key_id', 'cost')
    ON CONFLICT (bucket, name, value) DO UPDATE SET n = n + 1, cost_nanos = cost_nanos + excluded.cost_nanos;
END
"""

_JX = "json_extract(a.body, '$.{}')"
SQLITE_BACKFILL = (   # no lateral joins in SQLite: one statement per facet
    "INSERT OR IGNORE INTO audit_facet (name, value, seq) SELECT 'team', a.team, a.seq FROM audit_log a",
    *(f"INSERT OR IGNORE INTO audit_facet (name, value, seq) SELECT '{f}', {_JX.format(f)}, a.seq FROM audit_log a "
      f"WHERE {_JX.format(f)} IS NOT NULL" for f in ("action", "deployment")),
    "INSERT OR IGNORE INTO audit_facet (name, value, seq) SELECT 'rule', j.value, a.seq FROM audit_log a, "
    "json_each(a.body, '$.rule_ids') j",
    "INSERT INTO audit_rollup (bucket, name, value, n, cost_nanos) SELECT substr(a.time, 1, 16), 'requests', '', "
    "count(*), 0 FROM audit_log a WHERE a.kind = 'request' GROUP BY 1",
    *(f"INSERT INTO audit_rollup (bucket, name, value, n, cost_nanos) SELECT substr(a.time, 1, 16), '{f}', "
      f"{v}, count(*), 0 FROM audit_log a WHERE a.kind = 'request' AND {v} IS NOT NULL GROUP BY 1, 3"
      for f, v in (("action", _JX.format("action")), ("outcome", _JX.format("outcome")),
                   ("jurisdiction", f"coalesce({_JX.format('jurisdiction')}, '-')"))),
    "INSERT INTO audit_rollup (bucket, name, value, n, cost_nanos) SELECT substr(a.time, 1, 16), 'rule', j.value, "
    "count(DISTINCT a.seq), 0 FROM audit_log a, json_each(a.body, '$.rule_ids') j WHERE a.kind = 'request' "
    "GROUP BY 1, 3",
    f"INSERT INTO audit_rollup (bucket, name, value, n, cost_nanos) SELECT substr(a.time, 1, 10), 'key', "
    f"{_SQLITE_KEY.format(r='a')}, count(*), sum({_SQLITE_COST.format(r='a')}) FROM audit_log a "
    f"WHERE a.kind = 'request' GROUP BY 1, 3",
)

# --- PostgreSQL: the body cast to jsonb once per row ---------------------------------------------

_PG_FACETS = """
    SELECT 'team' AS name, {r}.team AS value
    UNION ALL SELECT 'action', {b}->>'action'
    UNION ALL SELECT 'deployment', {b}->>'deployment'
    UNION ALL SELECT 'rule', x FROM jsonb_array_elements_text(coalesce({b}->'rule_ids', '[]'::jsonb)) x
"""
_PG_MINUTE = """
    SELECT 'requests' AS name, '' AS value
    UNION ALL SELECT 'action', {b}->>'action'
    UNION ALL SELECT 'jurisdiction', coalesce({b}->>'jurisdiction', '-')
    UNION ALL SELECT 'outcome', {b}->>'outcome'
    UNION ALL SELECT 'rule', x FROM jsonb_array_elements_text(coalesce({b}->'rule_ids', '[]'::jsonb)) x
"""
_PG_COST = "round(coalesce(({b}->>'cost')::float8, 0) * 1000000000)::bigint"

PG_FUNCTION = f"""
CREATE FUNCTION nuri_audit_index() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE b jsonb := NEW.body::jsonb;
BEGIN
  INSERT INTO audit_facet (name, value, seq)
    SELECT DISTINCT f.name, f.value, NEW.seq FROM ({_PG_FACETS.format(r='NEW', b='b')}) f
    WHERE f.value IS NOT NULL ON CONFLICT DO NOTHING;
  IF NEW.kind = 'request' THEN
    INSERT INTO audit_rollup AS t (bucket, name, value, n, cost_nanos)
      SELECT DISTINCT left(NEW.time, 16), f.name, f.value, 1::bigint, 0::bigint
      FROM ({_PG_MINUTE.format(b='b')}) f WHERE f.value IS NOT NULL
      ON CONFLICT (bucket, name, value) DO UPDATE SET n = t.n + 1;
    INSERT INTO audit_rollup AS t (bucket, name, value, n, cost_nanos)
      VALUES (left(NEW.time, 10), 'key', coalesce(b->>'key_id', '-'), 1, {_PG_COST.format(b='b')})
      ON CONFLICT (bucket, name, value) DO UPDATE SET n = t.n + 1, cost_nanos = t.cost_nanos + excluded.cost_nanos;
  END IF;
  RETURN NULL;
END $$
"""

PG_BACKFILL = (
    f"INSERT INTO audit_facet (name, value, seq) SELECT DISTINCT f.name, f.value, a.seq FROM audit_log a "
    f"CROSS JOIN LATERAL ({_PG_FACETS.format(r='a', b='a.body::jsonb')}) f WHERE f.value IS NOT NULL "
    f"ON CONFLICT DO NOTHING",
    f"INSERT INTO audit_rollup (bucket, name, value, n, cost_nanos) SELECT left(a.time, 16) AS b, f.name, f.value, "
    f"count(DISTINCT a.seq), 0 FROM audit_log a CROSS JOIN LATERAL ({_PG_MINUTE.format(b='a.body::jsonb')}) f "
    f"WHERE a.kind = 'request' AND f.value IS NOT NULL GROUP BY 1, 2, 3",
    f"INSERT INTO audit_rollup (bucket, name, value, n, cost_nanos) SELECT left(a.time, 10), 'key', "
    f"coalesce(a.body::jsonb->>'key_id', '-'), count(*), sum({_PG_COST.format(b='a.body::jsonb')}) "
    f"FROM audit_log a WHERE a.kind = 'request' GROUP BY 1, 2, 3",
)


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
    if op.get_bind().dialect.name == "sqlite":
        for sql in SQLITE_BACKFILL:
            op.execute(sql)
        op.execute(SQLITE_TRIGGER)
        return
    for sql in PG_BACKFILL:
        op.execute(sql)
    op.execute(PG_FUNCTION)
    op.execute("CREATE TRIGGER audit_log_index AFTER INSERT ON audit_log FOR EACH ROW "
               "EXECUTE FUNCTION nuri_audit_index()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_index")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_index ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS nuri_audit_index()")
    op.drop_table("audit_rollup")
    op.drop_table("audit_facet")
