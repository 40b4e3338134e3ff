"""`python -m nuri.evals …`: the `nuri eval` commands without the rest of the CLI."""

import typer

from nuri.evals.cli import register

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
register(app)

if __name__ == "__main__":
    app()
