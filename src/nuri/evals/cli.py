"""`nuri eval …`: list suites, run them, compare runs, leaderboard, CI check, HTML report, import."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

eval_app = typer.Typer(help="Evaluate catalog deployments on Korean-first suites.", no_args_is_help=True)
console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="nuri.yaml; default: embedded model only",
                                                 envvar="NURI_CONFIG")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="state directory (default .nuri/)",
                                                  envvar="NURI_DATA_DIR")]
SuitesDirOpt = Annotated[list[Path] | None, typer.Option("--suites-dir", help="extra folder of suites")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


# -- shared plumbing ------------------------------------------------------------------------------
def _state(config: Path | None, data_dir: Path | None) -> tuple[Any, Path, Any]:
    from nuri.config import ConfigError, load_config
    from nuri.config import data_dir as resolve
    from nuri.evals.store import ResultStore, database_url

    directory = resolve(data_dir)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    return cfg, directory, ResultStore(database_url(cfg.ledger.database_url, directory))


def _suites(directory: Path, extra: list[Path] | None) -> dict[str, Any]:
    from nuri.evals.suite import discover, suite_dirs

    return discover(suite_dirs(extra, directory))


def _resolve_suites(names: list[str], known: dict[str, Any]) -> list[Any]:
    from nuri.evals.suite import load_suite

    chosen = []
    for name in names:
        if name in known:
            chosen.append(known[name])
        elif Path(name, "suite.yaml").is_file():
            chosen.append(load_suite(name))
        else:
            console.print(f"[red]unknown suite {name!r}[/red]; known: {', '.join(sorted(known)) or 'none'}")
            raise typer.Exit(2)
    return chosen


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def _run_rows(store: Any, run_ids: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    runs = []
    for rid in run_ids:
        run = store.get_run(rid)
        if run is None:
            console.print(f"[red]no evaluation run {rid!r}[/red]")
            raise typer.Exit(2)
        runs.append(run)
    return runs, store.run_items([r["id"] for r in runs])


class _Bar:
    """Rich progress bar with ETA, one line per deployment."""

    def __init__(self, progress: RichProgress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def start(self, model: str, total: int, done: int) -> None:
        self.tasks[model] = self.progress.add_task(model, total=total, completed=done)

    def advance(self, model: str) -> None:
        self.progress.advance(self.tasks[model])


# -- commands -------------------------------------------------------------------------------------
@eval_app.command("suites")
def suites_cmd(json_out: JsonOpt = False, data_dir: DataDirOpt = None, suites_dir: SuitesDirOpt = None) -> None:
    """List the suites with item counts and dataset versions."""
    from nuri.config import data_dir as resolve

    found = _suites(resolve(data_dir), suites_dir)
    rows = [s.summary() for s in found.values()]
    if json_out:
        _print_json(rows)
        return
    table = Table("suite", "items", "version", "scorer", "description")
    for r in rows:
        table.add_row(r["name"], str(r["items"]), r["version"], r["scorer"], r["description"][:70])
    Console().print(table)


@eval_app.command("run")
def run_cmd(
    suites: Annotated[list[str], typer.Argument(help="suite names or folders")],
    models: Annotated[str, typer.Option("--models", "-m", help="comma-separated deployment ids")] = "",
    limit: Annotated[int | None, typer.Option("--limit", help="first N items of each suite")] = None,
    via_gateway: Annotated[str | None, typer.Option("--via-gateway", help="send through a running gateway")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="NURI_API_KEY", help="key for --via-gateway")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="requests in flight per deployment")] = 4,
    retries: Annotated[int, typer.Option("--retries")] = 3,
    resume: Annotated[str | None, typer.Option("--resume", help="continue this run id")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="never continue an unfinished identical run")] = False,
    temperature: Annotated[float | None, typer.Option("--temperature")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens")] = None,
    shots: Annotated[int | None, typer.Option("--shots", help="use N of each suite's shots")] = None,
    unsafe_code: Annotated[bool, typer.Option("--unsafe-code", help="run model-written code even without the "
                                              "OS sandbox (bubblewrap); only on a machine you can lose")] = False,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    suites_dir: SuitesDirOpt = None,
) -> None:
    """Run suites against deployments; a killed run resumes without redoing finished items."""
    from nuri.errors import NuriError
    from nuri.evals.runner import EvalRunner, RunOptions
    from nuri.evals.scorers.code import SandboxUnavailable

    cfg, directory, store = _state(config, data_dir)
    chosen = _resolve_suites(suites, _suites(directory, suites_dir))
    named = [m.strip() for m in models.split(",") if m.strip()] or ["default"]
    model_ids = list(dict.fromkeys(d for m in named for d in cfg.aliases.get(m, [m])))  # aliases expanded
    overrides = {k: v for k, v in {"temperature": temperature, "seed": seed, "max_tokens": max_tokens,
                                   "num_shots": shots}.items() if v is not None}
    options = RunOptions(limit=limit, concurrency=concurrency, retries=retries, via_gateway=via_gateway,
                         api_key=api_key, resume=resume, auto_resume=not fresh, overrides=overrides,
                         unsafe_code=unsafe_code)
    try:
        if json_out or not sys.stderr.isatty():
            runner = EvalRunner(store, cfg, chosen, model_ids, options)
            summary = asyncio.run(runner.run())
        else:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("ETA"), TimeRemainingColumn())
            with RichProgress(*columns, console=console) as progress:
                runner = EvalRunner(store, cfg, chosen, model_ids, options, _Bar(progress))
                summary = asyncio.run(runner.run())
    except (KeyError, ValueError, SandboxUnavailable) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except (NuriError, ImportError, OSError, RuntimeError) as exc:  # a deployment that cannot start
        console.print(f"[red]evaluation stopped: {type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        store.close()
    if json_out:
        _print_json(summary)
        return
    if summary["resumed"]:
        console.print(f"resumed run {summary['run_id']}: {summary['skipped_finished']} finished items kept")
    table = Table("suite", "model", "items", "score", "passed", "errors", title=f"run {summary['run_id']}")
    for r in summary["results"]:
        table.add_row(r["suite"], r["model"], str(r["items"]), f"{r['score']:.3f}", str(r["passed"]), str(r["errors"]))
    Console().print(table)


@eval_app.command("rescore")
def rescore_cmd(run: str, json_out: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None,
                suites_dir: SuitesDirOpt = None,
                unsafe_code: Annotated[bool, typer.Option("--unsafe-code", help="see `eval run`")] = False) -> None:
    """Re-score a run's stored replies with the current scorers (no model is called)."""
    from nuri.evals.rescore import rescore_run
    from nuri.evals.scorers.code import CodeScorer, SandboxUnavailable

    CodeScorer.unsafe = unsafe_code  # this process only scores this run
    _, directory, store = _state(config, data_dir)
    try:
        result = asyncio.run(rescore_run(store, run, _suites(directory, suites_dir)))
    except (KeyError, ValueError, SandboxUnavailable) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        store.close()
    if json_out:
        _print_json(result)
    else:
        console.print(f"rescored {result['items']} items of run {result['run_id']}; {result['changed']} changed")


@eval_app.command("runs")
def runs_cmd(json_out: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List stored runs, newest first."""
    _, _, store = _state(config, data_dir)
    runs = store.list_runs()
    if json_out:
        _print_json(runs)
        return
    table = Table("run", "status", "started", "models", "suites")
    for r in runs:
        table.add_row(r["id"], r["status"], str(r["started_at"])[:19], ", ".join(r["models"]),
                      ", ".join(s["name"] for s in r["suites"]))
    Console().print(table)


@eval_app.command("compare")
def compare_cmd(run_a: str, run_b: str, json_out: JsonOpt = False, config: ConfigOpt = None,
                data_dir: DataDirOpt = None) -> None:
    """Per suite and model: run A vs run B with a paired significance test."""
    from nuri.evals.leaderboard import compare

    _, _, store = _state(config, data_dir)
    (_, rows_a), (_, rows_b) = _run_rows(store, [run_a]), _run_rows(store, [run_b])
    result = compare(rows_a, rows_b)
    if json_out:
        _print_json(result)
        return
    table = Table("suite", "model", "n", "A", "B", "B − A [95% CI]", "p (bootstrap)", "p (McNemar)")
    for c in result:
        if "diff" not in c:
            table.add_row(c["suite"], c["model"], "", "", "", c["note"], "", "")
            continue
        table.add_row(c["suite"], c["model"], str(c["n"]), f"{c['a']:.3f}", f"{c['b']:.3f}",
                      f"{c['diff']:+.3f} [{c['diff_low']:+.3f}, {c['diff_high']:+.3f}]",
                      f"{c['p_bootstrap']:.3f}", f"{c['p_mcnemar']:.3f}")
    Console().print(table)


@eval_app.command("leaderboard")
def leaderboard_cmd(
    run: Annotated[list[str] | None, typer.Option("--run", help="only these runs (default: latest per suite)")] = None,
    pair: Annotated[str | None, typer.Option("--pair", help="two models to test against each other: a,b")] = None,
    json_out: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Per-suite scores with bootstrap 95% intervals, paired tests, cost and latency per correct answer."""
    from nuri.evals.leaderboard import group, leaderboard, model_pairs, paired

    _, _, store = _state(config, data_dir)
    rows = _run_rows(store, run)[1] if run else store.latest_items()
    board = leaderboard(rows)
    if pair:
        a, b = [p.strip() for p in pair.split(",")]
        groups = group(rows)
        pairs = [{"suite": s, "model_a": a, "model_b": b} | paired(groups[(s, a)], groups[(s, b)])
                 for s in sorted({r["suite"] for r in rows}) if (s, a) in groups and (s, b) in groups]
    else:
        pairs = model_pairs(rows)
    if json_out:
        _print_json({"leaderboard": board, "pairs": pairs})
        return
    table = Table("suite", "model", "n", "score", "95% CI", "errors", "cost/correct", "latency/correct s",
                  "p50 ms", title="leaderboard")
    for e in board:
        table.add_row(e["suite"], e["model"], str(e["n"]), f"{e['score']:.3f}",
                      f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}]", str(e["errors"]),
                      "–" if e["cost_per_correct"] is None else f"{e['cost_per_correct']:.6f}",
                      str(e["latency_per_correct_s"] or "–"), str(e["latency_p50_ms"] or "–"))
    Console().print(table)
    if pairs:
        pt = Table("suite", "b vs a", "n", "b − a [95% CI]", "p (bootstrap)", "p (McNemar)", title="paired")
        for p in pairs:
            pt.add_row(p["suite"], f"{p['model_b']} vs {p['model_a']}", str(p["n"]),
                       f"{p['diff']:+.3f} [{p['diff_low']:+.3f}, {p['diff_high']:+.3f}]",
                       f"{p['p_bootstrap']:.3f}", f"{p['p_mcnemar']:.3f}")
        Console().print(pt)


@eval_app.command("check")
def check_cmd(
    baseline: Annotated[str, typer.Option("--baseline", help="the run to hold the line against")],
    candidate: Annotated[str | None, typer.Option("--candidate", help="default: the newest other finished run")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="significance level")] = 0.05,
    tolerance: Annotated[float, typer.Option("--tolerance", help="ignore drops smaller than this")] = 0.0,
    json_out: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Exit 1 when the candidate run is significantly worse than the baseline on any suite and model."""
    from nuri.evals.leaderboard import regressions

    _, _, store = _state(config, data_dir)
    base_run, base_rows = _run_rows(store, [baseline])
    if candidate is None:
        others = [r for r in store.list_runs("finished") if r["id"] != base_run[0]["id"]]
        if not others:
            console.print("[red]no other finished run to check; pass --candidate[/red]")
            raise typer.Exit(2)
        candidate = others[0]["id"]
    _, cand_rows = _run_rows(store, [candidate])
    bad = regressions(base_rows, cand_rows, alpha=alpha, tolerance=tolerance)
    if json_out:
        _print_json({"baseline": base_run[0]["id"], "candidate": candidate, "regressions": bad, "ok": not bad})
    elif bad:
        for b in bad:
            console.print(f"[red]regression[/red] {b['suite']} / {b['model']}: {b['a']:.3f} → {b['b']:.3f} "
                          f"({b['diff']:+.3f}, p={b['p_bootstrap']:.3f})")
    else:
        console.print(f"no significant drop from {base_run[0]['id']} to {candidate}")
    if bad:
        raise typer.Exit(1)


@eval_app.command("report")
def report_cmd(
    runs: Annotated[list[str], typer.Argument(help="run ids")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file; a .md summary is written beside it")]
    = Path("report.html"),
    config: ConfigOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """One self-contained HTML report (charts and per-item drill-down) plus a Markdown summary."""
    from nuri.evals.report import write_report

    _, _, store = _state(config, data_dir)
    run_rows, rows = _run_rows(store, runs)
    html_path, md_path = write_report(run_rows, rows, output)
    console.print(f"wrote {html_path} and {md_path}")


@eval_app.command("routes")
def routes_cmd(
    min_score: Annotated[float, typer.Option("--min-score")] = 0.0,
    json_out: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Suggested route table per workload (suite) from the latest results."""
    from nuri.evals.leaderboard import leaderboard
    from nuri.evals.route_table import suggest_routes

    _, _, store = _state(config, data_dir)
    routes = suggest_routes(leaderboard(store.latest_items()), min_score=min_score)
    if json_out:
        _print_json(routes)
        return
    for suite, r in routes.items():
        Console().print(f"[bold]{suite}[/bold]: {' → '.join(r['deployments'])}")


@eval_app.command("import")
def import_cmd(
    kind: Annotated[str, typer.Argument(help="kmmlu | kobest | click | haerae")],
    source: Annotated[Path, typer.Argument(help="a file or folder of the published files")],
    name: Annotated[str | None, typer.Option("--name", help="suite name (default: the benchmark's)")] = None,
    task: Annotated[str | None, typer.Option("--task", help="KoBEST task when the path does not say")] = None,
    split: Annotated[str | None, typer.Option("--split", help="which split's files to read")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Turn a local copy of a Korean benchmark into a suite under <data_dir>/evals/ (nothing is downloaded)."""
    from nuri.config import data_dir as resolve
    from nuri.evals.importers import import_suite

    kwargs: dict[str, Any] = {}
    if split is not None or kind in {"kmmlu", "kobest"}:
        kwargs["split"] = split if split is not None else "test"
    if task and kind == "kobest":
        kwargs["task"] = task
    try:
        folder = import_suite(kind, source, resolve(data_dir) / "evals", name, **kwargs)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"imported into {folder}")
