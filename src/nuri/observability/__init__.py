"""Metrics, tracing and JSON logs for the whole gateway.

Kept apart from the ledger so that any step (policy, routing, privacy) can emit a span or count a
metric without importing the ledger's storage (SQLAlchemy, Redis). Import the submodule you need:
`from nuri.observability import metrics, tracing`; this package itself imports nothing.
"""
