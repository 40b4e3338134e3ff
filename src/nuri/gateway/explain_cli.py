"""`nuri explain`: what the gateway would do with a request, from the command line.

It builds the gateway's `Evaluator` from the same config and parses the request as the gateway
does, so its answer is the live request's answer, with policy on or off.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nuri.errors import NuriError


def _body(text: str, model: str, system: str | None) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    return {"model": model, "messages": messages}


def run_explain(
    text: str,
    config_path: Path | None,
    model: str,
    team: str,
    tags: list[str],
    tier: str | None,
    system: str | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build what the gateway builds from the config and explain one request (returns the view);
    `body`, a whole request as a client would send it, takes the place of text and system."""
    from nuri.catalog import Catalog
    from nuri.config import load_config
    from nuri.gateway.evaluator import Evaluator
    from nuri.gateway.limits import within_output_caps
    from nuri.gateway.request import endpoint_of, parse_request
    from nuri.policy.explain import explain_view
    from nuri.principal import Principal
    from nuri.routing.health import HealthBook
    from nuri.routing.router import Router

    config = load_config(config_path)
    evaluator = Evaluator.from_config(config, Router(config.routing, HealthBook(config.routing)))
    principal = Principal(team=team, tags=frozenset(tags), latency_tier=tier or "standard")
    if body is None:
        body = _body(text, model, system)
    req = parse_request(body, endpoint_of(body))
    candidates = within_output_caps(Catalog(config.deployments, config.aliases).resolve(req.model),
                                    req.output_tokens)
    result = evaluator.evaluate(req, principal, candidates, latency_tier=tier)
    error = result.error.message if result.error is not None else None
    return explain_view(result.classification, result.decision, result.steps, config.deployments, error=error)


def _render(view: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    c = view["classification"]
    entities = ", ".join(f"{k}×{v}" for k, v in c["entities"].items()) or "none"
    console.print(f"[bold]request[/] {view['requested']}  [bold]action[/] {view['action']}")
    console.print(
        f"entities: {entities}; categories: {', '.join(c['categories']) or 'none'}; "
        f"grade {c['n2sf_grade']}; topics: {', '.join(c['sensitive_topics']) or 'none'}; "
        f"domains: {', '.join(c['domains']) or 'none'}"
    )
    if c.get("unscanned_content"):
        console.print(f"unscanned content (not read for personal data): {', '.join(c['unscanned_content'])}")
    rules = Table(title="matched rules")
    for col in ("rule", "pack", "action", "citation"):
        rules.add_column(col)
    for m in view["matched"]:
        rules.add_row(m["id"], m["pack"], m["action"], m["citation"])
    console.print(rules)
    deps = Table(title="deployments")
    for col in ("deployment", "where", "eligible", "mask", "why"):
        deps.add_column(col)
    for d in view["deployments"]:
        eligible = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[d["eligible"]]
        deps.add_row(
            d["id"], f"{d['jurisdiction']} {d['hosting']}", eligible,
            ", ".join(d.get("mask_types") or []), d.get("reason", ""),
        )
    console.print(deps)
    route = " → ".join(
        s["deployment"] + (f" (masked: {', '.join(s['mask_types'])})" if s["mask_types"] else "")
        for s in view["route"]
    )
    console.print(f"[bold]route[/] {route or 'none'}")
    if view["error"]:
        console.print(f"[red]{view['error']}[/]")
    if view["label"]:
        console.print(f"label: {view['label_text']}")
    if view["flag"]:
        console.print(f"flag: {'; '.join(view['flag_reasons'])}")


def register(app: typer.Typer) -> None:
    @app.command()
    def explain(
        text: Annotated[str | None, typer.Argument(help="the prompt to explain")] = None,
        file: Annotated[Path | None, typer.Option("--file", "-f", help="read the prompt from a file")] = None,
        config: Annotated[Path | None, typer.Option("--config", "-c", help="nuri.yaml")] = None,
        model: Annotated[str, typer.Option("--model", "-m", help="model or alias asked for")] = "default",
        team: Annotated[str, typer.Option(help="caller's team")] = "anonymous",
        tag: Annotated[list[str] | None, typer.Option("--tag", help="caller tag (repeatable)")] = None,
        tier: Annotated[str | None, typer.Option(help="latency tier")] = None,
        system: Annotated[str | None, typer.Option(help="a system message to include")] = None,
        request: Annotated[Path | None, typer.Option(
            "--request", help="a whole request body (JSON) as a client sends it: tools, images, …")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the explain JSON")] = False,
    ) -> None:
        """Show the classification, matched rules, eligible deployments and route for a prompt."""
        body = None
        if request is not None:
            try:
                body = json.loads(request.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise typer.BadParameter(f"--request {request}: not a readable JSON object ({exc})") from exc
            if not isinstance(body, dict):
                raise typer.BadParameter(f"--request {request}: not a JSON object")
            prompt = ""
        elif file is not None:
            prompt = file.read_text(encoding="utf-8")
        elif text is not None:
            prompt = text
        elif not sys.stdin.isatty():
            prompt = sys.stdin.read()
        else:
            raise typer.BadParameter("give TEXT, --file F, or pipe the prompt on stdin")
        try:
            view = run_explain(prompt, config, model, team, tag or [], tier, system, body=body)
        except (NuriError, ValueError) as exc:
            typer.echo(f"error: {getattr(exc, 'message', None) or exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(json.dumps(view, ensure_ascii=False, indent=2))
        else:
            _render(view)
