"""The ledger's database: one engine over SQLite or PostgreSQL (db.py) and its migrations."""
