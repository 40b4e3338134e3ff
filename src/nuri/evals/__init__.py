"""Evaluation harness: Korean-first suites run on every catalog deployment through the provider
layer (or a running gateway), scored, stored beside the ledger, and fed to routing.

Layout: suite (files and versions), scorers/ (one module per family), runner (concurrency,
retries, resume), store (eval_ tables), stats and leaderboard, report (HTML and Markdown),
importers (local copies of public benchmarks), route_table (router feed), cli (`nuri eval`).
"""
