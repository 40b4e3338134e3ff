# The two set-up commands (see README): `make serve` and `make test`.
.PHONY: install serve test lint bench

install:
	bash scripts/bootstrap.sh

serve: install
	.venv/bin/nuri serve --host 127.0.0.1 --port 8000

test: install
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy src

bench: install
	.venv/bin/python bench/overhead.py
