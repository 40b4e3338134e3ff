"""`nuri plan audit` and `nuri plan scorecard`: the use-case audit and the procurement scorecards."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

plan_app = typer.Typer(help="Plan the mix: use-case audit, procurement scorecards, routing file.",
                       no_args_is_help=True)
console = Console(stderr=True)
SHOWN = 40   # workloads printed; the report holds them all

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="nuri.yaml: catalog and policy",
                                                 envvar="NURI_CONFIG")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="state directory holding the eval store",
                                                  envvar="NURI_DATA_DIR")]
ResultsOpt = Annotated[list[Path] | None, typer.Option("--results", help="JSONL eval item rows (besides the store)")]
NoStoreOpt = Annotated[bool, typer.Option("--no-store", help="do not read the eval store")]
CriteriaOpt = Annotated[Path | None, typer.Option("--criteria", "--scorecard",
                                                   help="procurement criteria YAML (default: workloads.scorecard)")]


def _out() -> Console:
    """stdout; wide when it is not a terminal, so piped tables keep their columns."""
    return Console() if sys.stdout.isatty() else Console(width=240)


def register(app: typer.Typer) -> None:
    app.add_typer(plan_app, name="plan")


def _config(path: Path | None) -> Any:
    from nuri.config import ConfigError, load_config

    try:
        return load_config(path)
    except (ConfigError, OSError) as exc:
        console.print(f"nuri: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc


def _evidence(cfg: Any, data_dir: Path | None, results: list[Path] | None, no_store: bool) -> Any:
    """Results files plus, unless told not to, the eval store's latest results (if a store exists)."""
    from nuri.config import env
    from nuri.planning.evidence import Evidence, read_rows, store_rows

    rows: list[dict[str, Any]] = []
    try:
        for path in results or []:
            rows.extend(read_rows(path))
    except (OSError, ValueError) as exc:
        console.print(f"nuri: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    if not no_store:
        url = cfg.ledger.database_url
        if url is None:
            directory = Path(data_dir or env("NURI_DATA_DIR") or ".nuri")
            db = directory / "nuri.db"
            url = f"sqlite:///{db.resolve()}" if db.is_file() else None
        if url is not None:
            rows.extend(store_rows(url))
    return Evidence.from_rows(rows)


def _criteria(cfg: Any, path: Path | None) -> Any:
    from nuri.planning.scorecard import load_criteria

    try:
        return load_criteria(path or cfg.workloads.scorecard)
    except ValueError as exc:
        console.print(f"nuri: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc


@plan_app.command("audit")
def audit_cmd(
    inventory: Annotated[Path, typer.Argument(help="workload inventory, YAML or CSV")],
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for the report and routing file")]
    = Path("plan"),
    config: ConfigOpt = None, data_dir: DataDirOpt = None, results: ResultsOpt = None, no_store: NoStoreOpt = False,
    criteria: CriteriaOpt = None,
    title: Annotated[str, typer.Option("--title", help="report title")] = "Nuri workload audit",
) -> None:
    """Audit every workload: data, rules, eligible deployments, and the recommendation.

    Writes report.html, report.md, workloads.csv and routes.yaml (load it with
    `workloads: {routes: …}` in nuri.yaml). Bad inventory rows are reported; the others are audited."""
    from nuri.planning.audit import audit_workloads
    from nuri.planning.render import money, write_all
    from nuri.workloads import load_inventory

    cfg = _config(config)
    parsed = load_inventory(inventory)
    for err in parsed.errors:
        console.print(f"[yellow]{inventory}: {err}[/yellow]", highlight=False)
    evidence = _evidence(cfg, data_dir, results, no_store)
    result = audit_workloads(cfg, parsed.workloads, evidence, _criteria(cfg, criteria),
                             [str(e) for e in parsed.errors])
    files = write_all(result, evidence, output, title)
    table = Table("workload", "recommended", "cost / month", "why")
    for w in result.workloads[:SHOWN]:
        best = w.recommended
        table.add_row(w.workload.name, best.deployment if best else "[red]none[/red]",
                      money(best.monthly_cost) if best else "—", w.why)
    _out().print(table)
    if len(result.workloads) > SHOWN:
        console.print(f"… and {len(result.workloads) - SHOWN} more workloads: see {files['markdown']}", highlight=False)
    console.print(f"{len(result.workloads)} workloads audited, {len(parsed.errors)} bad rows; wrote "
                  + ", ".join(str(p) for p in files.values()), highlight=False)


@plan_app.command("scorecard")
def scorecard_cmd(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="export: .csv, .json or .md")] = None,
    config: ConfigOpt = None, data_dir: DataDirOpt = None, results: ResultsOpt = None, no_store: NoStoreOpt = False,
    criteria: CriteriaOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """One procurement scorecard per deployment: each criterion's score and evidence, and the total."""
    from nuri.planning.scorecard import score_deployments

    cfg = _config(config)
    chosen = _criteria(cfg, criteria)
    cards = score_deployments(cfg.deployments, chosen, _evidence(cfg, data_dir, results, no_store),
                              cfg.policy.home_jurisdiction)
    data = [c.as_dict() for c in cards.values()]
    if json_out:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        names = list(chosen.criteria)
        table = Table("deployment", "total", *names)
        for card in cards.values():
            table.add_row(card.deployment, f"{card.total:.2f}", *(f"{c.score:.2g}" for c in card.criteria))
        _out().print(table)
    if output is not None:
        output.write_text(export_scorecards(data, output.suffix.lower()), encoding="utf-8")
        console.print(f"wrote {output}", highlight=False)


def export_scorecards(cards: list[dict[str, Any]], suffix: str) -> str:
    if suffix == ".json":
        return json.dumps(cards, ensure_ascii=False, indent=2) + "\n"
    names = list(cards[0]["criteria"]) if cards else []
    if suffix == ".md":
        lines = ["| deployment | total | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
        lines += [f"| {c['deployment']} | {c['total']:.2f} | "
                  + " | ".join(f"{c['criteria'][n]['score']:.2g}" for n in names) + " |" for c in cards]
        lines += ["", *(f"- {c['deployment']} · {n}: {c['criteria'][n]['evidence']}" for c in cards for n in names)]
        return "\n".join(lines) + "\n"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["deployment", "total", *(f"{n}" for n in names), *(f"{n}_evidence" for n in names)])
    for c in cards:
        writer.writerow([c["deployment"], c["total"], *(c["criteria"][n]["score"] for n in names),
                         *(c["criteria"][n]["evidence"] for n in names)])
    return buf.getvalue()
